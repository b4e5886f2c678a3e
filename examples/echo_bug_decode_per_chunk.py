"""BUG: decodes every received chunk as UTF-8 and re-encodes it before echoing.

Symptom a tester sees: ASCII messages pass, but UTF-8 text longer than one chunk
comes back CORRUPTED: a multi-byte character split between two recv(1024) chunks
is turned into U+FFFD replacement characters (bytes EF BF BD), and binary payloads
are mangled too. Why: TCP is a byte stream; a chunk boundary can fall inside a
character, so bytes must be echoed as bytes.

Usage: python3 echo_bug_decode_per_chunk.py PORT   (otherwise a thread-per-client echo server)
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
            text = data.decode("utf-8", errors="replace")  # BUG: chunk != characters
            conn.sendall(text.encode("utf-8"))
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
