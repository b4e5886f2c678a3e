"""Lab 2: chat client for the single-client chat server, turn by turn.

Usage: python3 chat_client.py PORT

Reads a line with input() ("You: " prompt; empty lines are skipped), sends it
(UTF-8, no newline), then waits for the server operator's reply and prints it as
"Server: <text>". Typing `exit` sends `exit` and ends; end of input does the same.
If nothing listens on PORT it says so and exits with status 1.
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 chat_client.py PORT")
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
            message = "exit"
        if not message:
            continue
        client.sendall(message.encode())
        if message == "exit":
            break
        reply = client.recv(1024)
        if not reply:
            print("Server closed the connection", flush=True)
            break
        print("Server:", reply.decode(errors="replace"), flush=True)

    client.close()


if __name__ == "__main__":
    main()
