"""Lab 4: client that asks which of the two servers to use.

Usage: python3 choose_client.py PORT1 PORT2

Asks "1 or 2? " with input() (asks again on anything else; ends on end of input),
connects to PORT1 for 1 or PORT2 for 2, prints "Connected to server N (HOST:PORT)",
then behaves like echo_client.py: each input() line is sent (no newline), the whole
echo is printed as "Echo: <text>", empty lines are skipped, `exit` or end of input ends.
If nothing listens on the chosen port it says so and exits with status 1.
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: python3 choose_client.py PORT1 PORT2")
    ports = [int(sys.argv[1]), int(sys.argv[2])]

    while True:
        try:
            choice = input("1 or 2? ").strip()
        except EOFError:
            return
        if choice in ("1", "2"):
            break
        print("Please type 1 or 2", flush=True)
    port = ports[int(choice) - 1]

    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.connect((HOST, port))
    except ConnectionRefusedError:
        sys.exit(f"Could not connect to {HOST}:{port}: is the server running?")
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
