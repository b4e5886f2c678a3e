"""BUG: the "1 or 2?" client always connects to the first port, whatever is typed.

Symptom a tester sees: answering 1 works; answering 2 still connects to server 1
(the server playing port 2 never sees a connection, and server 1 gets traffic it
should not). Why: the choice is read but never used to pick the port.

Usage: python3 choose_client_bug_always_first.py PORT1 PORT2   (otherwise like choose_client.py)
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    ports = [int(sys.argv[1]), int(sys.argv[2])]

    while True:
        try:
            choice = input("1 or 2? ").strip()
        except EOFError:
            return
        if choice in ("1", "2"):
            break
        print("Please type 1 or 2", flush=True)
    port = ports[0]  # BUG: should be ports[int(choice) - 1]

    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect((HOST, port))
    print(f"Connected to server {choice} ({HOST}:{port})", flush=True)

    while True:
        try:
            line = input("> ")
        except EOFError:
            break
        if line == "exit":
            break
        if not line:
            continue
        data = line.encode()
        client.sendall(data)
        echo = b""
        while len(echo) < len(data):
            chunk = client.recv(1024)
            if not chunk:
                print("Server closed the connection", flush=True)
                client.close()
                sys.exit(1)
            echo += chunk
        print("Echo:", echo.decode(errors="replace"), flush=True)

    client.close()


if __name__ == "__main__":
    main()
