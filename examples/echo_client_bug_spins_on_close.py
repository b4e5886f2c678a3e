"""BUG: the echo client does not notice that the server closed the connection.

Symptom a tester sees: while the server answers, all is well; once the server closes
the connection, the next line is sent and the client hangs for ever at 100% CPU,
printing nothing. Why: recv() returns b'' on a closed connection, every time, at once;
the loop adds b'' to the echo and asks again, and the echo never grows.

Usage: python3 echo_client_bug_spins_on_close.py PORT   (otherwise like echo_client.py)
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
        data = line.encode()
        try:
            client.sendall(data)
        except OSError:
            print("Could not send", flush=True)
            break
        echo = b""
        while len(echo) < len(data):
            echo += client.recv(1024)  # BUG: b'' (closed) is never checked
        print("Echo:", echo.decode(errors="replace"), flush=True)

    client.close()


if __name__ == "__main__":
    main()
