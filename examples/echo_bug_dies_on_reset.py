"""BUG: one client's error kills the whole server (the handler calls os._exit(1)).

Symptom a tester sees: with well-behaved clients it is a fine threaded server, but
as soon as one client aborts its connection (RST: recv raises ConnectionResetError)
the whole process exits: every other client is cut off mid-conversation (truncated
or missing echoes, connection reset) and the survival probe finds nobody listening
(connection refused). Why: a thread per client is only independent if each thread
handles its own errors.

Usage: python3 echo_bug_dies_on_reset.py PORT
"""
import os
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
        conn.close()
    except OSError as e:
        print("Client", addr, "error:", e, "- shutting down", flush=True)
        os._exit(1)  # BUG: ends the whole process, not just this client's thread


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    print(f"Threaded echo server listening on {HOST}:{port}", flush=True)
    while True:
        conn, addr = server.accept()
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    main()
