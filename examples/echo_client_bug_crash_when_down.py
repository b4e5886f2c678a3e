"""BUG: the echo client does not handle a server that is not running.

Symptom a tester sees: with the server up it works; with nothing listening on the port
it dies at once with a Python traceback ending in
`ConnectionRefusedError: [Errno 111] Connection refused` instead of a message.
Why: connect() raises ConnectionRefusedError, and nothing catches it.

Usage: python3 echo_client_bug_crash_when_down.py PORT   (otherwise like echo_client.py)
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    port = int(sys.argv[1])

    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect((HOST, port))  # BUG: ConnectionRefusedError is not caught
    print(f"Connected to {HOST}:{port}", flush=True)

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
