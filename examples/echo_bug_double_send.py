"""BUG: sends every received chunk twice.

Symptom a tester sees: each message's echo is followed by EXTRA bytes (the same
chunk again), so the reply is longer than what was sent; a client that reads only
len(message) bytes sees the leftover copy at the start of its next reply (which
then looks corrupted).

Usage: python3 echo_bug_double_send.py PORT   (otherwise a thread-per-client echo server)
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
            conn.sendall(data)  # BUG: a leftover debugging line
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
    while True:
        conn, addr = server.accept()
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    main()
