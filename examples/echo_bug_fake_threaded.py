"""BUG: starts a thread per client but join()s it at once, so it is really iterative.

Symptom a tester sees: every echo is correct, but clients are served strictly one
after another (maximum overlap 1, verdict "iterative" where "concurrent" was
expected); clients that arrive together wait for everyone ahead of them, so the
wait histogram grows client by client. Why: join() blocks the accept loop until
that client's thread has finished.

Usage: python3 echo_bug_fake_threaded.py PORT
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
    print(f"Threaded echo server listening on {HOST}:{port}", flush=True)
    while True:
        conn, addr = server.accept()
        t = threading.Thread(target=handle, args=(conn, addr))
        t.start()
        t.join()  # BUG: waits for this client before accepting the next one


if __name__ == "__main__":
    main()
