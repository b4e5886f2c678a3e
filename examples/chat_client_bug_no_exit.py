"""BUG: the chat client ends on `exit` without sending it to the server.

Symptom a tester sees: the conversation is right, and typing `exit` ends the client,
but the server never receives `exit`: it sees the connection drop instead of the end of
the chat. Why: the loop checks for `exit` before sending and breaks out at once.

Usage: python3 chat_client_bug_no_exit.py PORT   (otherwise like chat_client.py)
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    port = int(sys.argv[1])

    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.connect((HOST, port))
    except ConnectionRefusedError:
        sys.exit(f"Could not connect to {HOST}:{port}: is the server running?")
    print(f"Connected to chat server {HOST}:{port}", flush=True)

    while True:
        try:
            message = input("You: ")
        except EOFError:
            break
        if message == "exit":  # BUG: should send it first
            break
        if not message:
            continue
        client.sendall(message.encode())
        reply = client.recv(1024)
        if not reply:
            print("Server closed the connection", flush=True)
            break
        print("Server:", reply.decode(errors="replace"), flush=True)

    client.close()


if __name__ == "__main__":
    main()
