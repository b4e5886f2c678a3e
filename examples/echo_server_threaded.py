"""Lab 3: concurrent echo server, one thread per client.

Usage: python3 echo_server_threaded.py PORT [HOST]

HOST is the address to listen on: 127.0.0.1 (the default) serves this machine only;
0.0.0.0 serves other machines too, as a server in a container must.

The main thread only accepts; each client gets its own thread that echoes until the
client closes. Many clients are served at the same time, and a client that crashes
(reset, half-close, garbage) only ends its own thread.
"""
import socket
import sys
import threading

HOST = "127.0.0.1"


def handle(conn, addr):
    print("Connected by", addr, flush=True)
    try:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            conn.sendall(data)
    except OSError as e:  # only this client is affected
        print("Client", addr, "error:", e, flush=True)
    finally:
        conn.close()
        print("Disconnected", addr, flush=True)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python3 echo_server_threaded.py PORT [HOST]")
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) == 3 else HOST

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen()
    print(f"Threaded echo server listening on {host}:{port}", flush=True)

    while True:
        conn, addr = server.accept()
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    main()
