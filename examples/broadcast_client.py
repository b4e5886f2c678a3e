"""Lab 5: client for the broadcast chat room.

Usage: python3 broadcast_client.py PORT

A background thread prints everything that arrives from the room (each chunk on its
own line). The main loop reads lines with input() and sends each (UTF-8, no newline;
empty lines skipped). `exit` or end of input closes the connection and ends (`exit`
is not sent).
"""
import socket
import sys
import threading

HOST = "127.0.0.1"


def receive(client):
    while True:
        try:
            data = client.recv(1024)
        except OSError:
            break
        if not data:
            print("Server closed the connection", flush=True)
            break
        print(data.decode(errors="replace"), flush=True)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 broadcast_client.py PORT")
    port = int(sys.argv[1])

    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect((HOST, port))
    print(f"Joined the chat room at {HOST}:{port}", flush=True)
    threading.Thread(target=receive, args=(client,), daemon=True).start()

    while True:
        try:
            message = input()
        except EOFError:
            break
        if message == "exit":
            break
        if not message:
            continue
        try:
            client.sendall(message.encode())
        except OSError:
            print("Connection lost", flush=True)
            break

    client.close()


if __name__ == "__main__":
    main()
