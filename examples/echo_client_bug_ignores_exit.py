"""BUG: the echo client compares the line with `is` instead of `==`, so `exit` never ends it.

Symptom a tester sees: every line is echoed correctly, but `exit` is sent to the server
like any other line (its echo is printed) and the client then waits for more input
forever. Python even warns at start: SyntaxWarning: "is" with a literal. Why: `is` asks
whether two names are the same object; a line read by input() is a new string, never
the literal "exit".

Usage: python3 echo_client_bug_ignores_exit.py PORT   (otherwise like echo_client.py)
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
        if line is "exit":  # BUG: should be ==
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
