"""Lab 2: single-client chat server, turn by turn.

Usage: python3 chat_server.py PORT

Accepts ONE client. Then, in turns: receive a message (one recv(1024)), print it as
"Client: <text>", and send back the reply the operator types on standard input
(input() with a "You: " prompt; empty lines are skipped). When the client sends
`exit` (or disconnects, or standard input ends) the server closes and ends.

Protocol: each turn is one message of plain UTF-8 text, no newline added; the reply
to `exit` is nothing (the connection is closed).
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 chat_server.py PORT")
    port = int(sys.argv[1])

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen(1)
    print(f"Chat server waiting on {HOST}:{port}", flush=True)

    conn, addr = server.accept()
    print("Client connected:", addr, flush=True)
    with conn:
        while True:
            data = conn.recv(1024)
            if not data:
                print("Client disconnected", flush=True)
                break
            message = data.decode(errors="replace")
            print("Client:", message, flush=True)
            if message.strip() == "exit":
                print("Client ended the chat", flush=True)
                break
            try:
                reply = input("You: ")
                while not reply:  # an empty send would leave the client waiting
                    reply = input("You: ")
            except EOFError:
                print("No more input, closing", flush=True)
                break
            conn.sendall(reply.encode())
    server.close()


if __name__ == "__main__":
    main()
