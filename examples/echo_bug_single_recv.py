"""BUG: one recv(1024) per client, one reply, then the connection is closed.

Symptom a tester sees: a message longer than 1024 bytes comes back TRUNCATED (only
its first 1024 bytes, then the server closes), and every message after the first
is lost (the connection is already closed: missing reply / connection reset).
Why: one recv(1024) is not one message, and a client may send many messages.

Usage: python3 echo_bug_single_recv.py PORT   (otherwise an iterative echo server)
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    print(f"Echo server listening on {HOST}:{port}", flush=True)

    while True:
        conn, addr = server.accept()
        print("Connected by", addr, flush=True)
        try:
            data = conn.recv(1024)  # BUG: should loop until recv returns b""
            conn.sendall(data)
        except OSError as e:
            print("Client error:", e, flush=True)
        conn.close()


if __name__ == "__main__":
    main()
