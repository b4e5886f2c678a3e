"""Lab 1: iterative echo server (serves clients one after another, forever).

Usage: python3 echo_server_iterative.py PORT

socket -> bind -> listen -> accept -> recv/sendall until the client closes, then
accept the next client. Only one client is served at a time: the others wait in the
listen backlog until the current one disconnects.
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 echo_server_iterative.py PORT")
    port = int(sys.argv[1])

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    print(f"Iterative echo server listening on {HOST}:{port}", flush=True)

    while True:
        conn, addr = server.accept()
        print("Connected by", addr, flush=True)
        with conn:
            try:
                while True:
                    data = conn.recv(1024)
                    if not data:  # the client closed the connection
                        break
                    conn.sendall(data)
            except OSError as e:  # e.g. the client crashed (connection reset)
                print("Client error:", e, flush=True)
        print("Disconnected", addr, flush=True)


if __name__ == "__main__":
    main()
