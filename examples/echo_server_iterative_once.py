"""Lab 1 (classic version): iterative echo server that serves ONE client, then exits.

Usage: python3 echo_server_iterative_once.py PORT

socket -> bind -> listen -> accept -> recv/sendall until the client closes ->
close everything and end. This is the textbook first server; a test harness must
expect it to exit after its client leaves.
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 echo_server_iterative_once.py PORT")
    port = int(sys.argv[1])

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen(1)
    print(f"Echo server listening on {HOST}:{port}", flush=True)

    conn, addr = server.accept()
    print("Connected by", addr, flush=True)
    try:
        while True:
            data = conn.recv(1024)
            if not data:  # the client closed the connection
                break
            conn.sendall(data)
    except OSError as e:  # e.g. the client crashed (connection reset)
        print("Client error:", e, flush=True)
    conn.close()
    server.close()
    print("Client left, server exiting", flush=True)


if __name__ == "__main__":
    main()
