"""BUG: reads everything the client sends but never sends anything back.

Symptom a tester sees: connections are accepted and sends succeed, but no reply
ever arrives: every message is MISSING (reply timeout), for every client. Why:
the sendall(data) of the echo loop was forgotten.

Usage: python3 echo_bug_never_replies.py PORT
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
            print("Received", len(data), "bytes", flush=True)  # BUG: no sendall
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
