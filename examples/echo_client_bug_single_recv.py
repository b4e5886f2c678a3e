"""BUG: the echo client reads each echo with a single recv(1024).

Symptom a tester sees: short lines are fine, but a line longer than 1024 bytes is
printed truncated (at most its first 1024 bytes), and the rest of that echo is read as
the "echo" of the next line. Why: TCP is a byte stream; one recv() returns whatever has
arrived, up to 1024 bytes, not one whole message.

Usage: python3 echo_client_bug_single_recv.py PORT   (otherwise like echo_client.py)
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
        client.sendall(line.encode())
        echo = client.recv(1024)  # BUG: one recv is not one message
        if not echo:
            print("Server closed the connection", flush=True)
            break
        print("Echo:", echo.decode(errors="replace"), flush=True)

    client.close()


if __name__ == "__main__":
    main()
