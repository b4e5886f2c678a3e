"""Lab 2: chat server, turn by turn, one client at a time.

Usage: python3 chat_server.py PORT

Accepts a client. Then, in turns: receive a message (one recv(1024)), print it as
"Client: <text>", and send back the reply the operator types on standard input
(input() with a "You: " prompt; empty lines are skipped). When the client sends
`exit`, disconnects or resets, the session ends and the server goes back to accept()
for the next client. When standard input ends (the operator leaves) the server closes
and ends.

Protocol: each turn is one message of plain UTF-8 text, no newline added; the reply
to `exit` is nothing (the connection is closed).
"""
import socket
import sys

HOST = "127.0.0.1"


def chat(conn):
    """One session; returns False when the operator has left (end of standard input)."""
    while True:
        try:
            data = conn.recv(1024)
        except ConnectionResetError:
            print("Client reset the connection", flush=True)
            return True
        if not data:
            print("Client disconnected", flush=True)
            return True
        message = data.decode(errors="replace")
        print("Client:", message, flush=True)
        if message.strip() == "exit":
            print("Client ended the chat", flush=True)
            return True
        try:
            reply = input("You: ")
            while not reply:  # an empty send would leave the client waiting
                reply = input("You: ")
        except EOFError:
            print("No more input, closing", flush=True)
            return False
        try:
            conn.sendall(reply.encode())
        except OSError as e:  # the client left while the operator was typing
            print("Client error:", e, flush=True)
            return True


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 chat_server.py PORT")
    port = int(sys.argv[1])

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen(1)
    print(f"Chat server waiting on {HOST}:{port}", flush=True)

    operator_here = True
    while operator_here:
        conn, addr = server.accept()
        print("Client connected:", addr, flush=True)
        with conn:
            operator_here = chat(conn)
        print("Session over", flush=True)
    server.close()


if __name__ == "__main__":
    main()
