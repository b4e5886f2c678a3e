"""Lab 1: echo client.

Usage: python3 echo_client.py PORT

Reads lines with input() ("> " prompt), sends each line's text (UTF-8, without the
newline), waits until the whole echo has come back and prints it as "Echo: <text>".
Empty lines are skipped. Ends on end of input or when the line is `exit` (which is
not sent). If nothing listens on PORT it says so and exits with status 1.
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 echo_client.py PORT")
    port = int(sys.argv[1])

    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.connect((HOST, port))
    except ConnectionRefusedError:
        sys.exit(f"Could not connect to {HOST}:{port}: is the server running?")
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
        # One recv(1024) is not one message: collect until the whole echo is back.
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
