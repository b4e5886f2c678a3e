"""BUG: serves clients from a thread pool of only 2 workers.

Symptom a tester sees: echoes are correct and 2 clients are served at once, but
never more: with many clients connected together the maximum overlap is 2, so a
"concurrent" / "at-least N" (N > 2) check fails; the 3rd and later clients wait
for a free worker (growing wait histogram, timeouts if clients stay long). Why:
ThreadPoolExecutor(max_workers=2) queues every further client.

Usage: python3 echo_bug_pool_of_two.py PORT
"""
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

HOST = "127.0.0.1"


def handle(conn, addr):
    print("Connected by", addr, flush=True)
    try:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            conn.sendall(data)
    except OSError as e:
        print("Client", addr, "error:", e, flush=True)
    finally:
        conn.close()


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    print(f"Echo server listening on {HOST}:{port}", flush=True)
    pool = ThreadPoolExecutor(max_workers=2)  # BUG: at most 2 clients at a time
    while True:
        conn, addr = server.accept()
        pool.submit(handle, conn, addr)


if __name__ == "__main__":
    main()
