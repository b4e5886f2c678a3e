"""BUG: the chat server answers each message with the reply typed for the previous one.

Symptom a tester sees: the first message gets no reply at all; from then on every
reply is one turn late: message 2 is answered with the operator's line 1, message 3
with line 2, and so on. The chat check reports "no reply to message 1" and then
"lagging: the reply to message 2 is the operator's line 1". Why: the handler sends
the reply it read last time *before* asking the operator for a new one, so the line
typed for a message only goes out when the next message arrives.

Usage: python3 chat_bug_lagging_reply.py PORT   (otherwise like chat_server.py)
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen(1)
    print(f"Chat server waiting on {HOST}:{port}", flush=True)

    conn, addr = server.accept()
    print("Client connected:", addr, flush=True)
    pending = None  # the operator's answer, not yet sent
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
            if pending is not None:
                conn.sendall(pending.encode())  # BUG: the answer to the previous message
            try:
                pending = input("You: ")
                while not pending:
                    pending = input("You: ")
            except EOFError:
                print("No more input, closing", flush=True)
                break
    server.close()


if __name__ == "__main__":
    main()
