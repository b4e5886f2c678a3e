"""BUG: echoes with conn.send(data) and ignores how many bytes send() actually sent.

Symptom a tester sees: small messages pass, but large ones (on loopback: about
40 KiB and up, every time at 64 KiB) come back with bytes MISSING from the middle,
so the stream is CORRUPTED or TRUNCATED (the reply stops short and times out). Why: send() may send only part of
the buffer and returns the count; here the send buffer is small (SO_SNDBUF 4096)
and the socket has a timeout, so send() often sends only what fits. sendall()
loops until everything is sent.

Usage: python3 echo_bug_send_ignored.py PORT   (otherwise a thread-per-client echo server)
"""
import socket
import sys
import threading

HOST = "127.0.0.1"


def handle(conn, addr):
    print("Connected by", addr, flush=True)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    conn.settimeout(30)  # don't wait forever for a dead client
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.send(data)  # BUG: the return value (bytes really sent) is ignored
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
