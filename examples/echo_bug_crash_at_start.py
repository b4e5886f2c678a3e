"""BUG: crashes before listening: a typo (server.listne) raises AttributeError.

Symptom a tester sees: the server never accepts a connection; it exits at once
with status 1 and a traceback ending in "AttributeError: 'socket' object has no
attribute 'listne'" on stderr. A harness should report "server would not start"
(could not run) and show that stderr, not a failed echo check.

Usage: python3 echo_bug_crash_at_start.py PORT
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listne()  # BUG: typo for listen()
    print(f"Echo server listening on {HOST}:{port}", flush=True)

    while True:
        conn, addr = server.accept()
        with conn:
            while True:
                data = conn.recv(1024)
                if not data:
                    break
                conn.sendall(data)


if __name__ == "__main__":
    main()
