"""BUG: every client is added to the room's list twice, so it receives everything twice.

Symptom a tester sees: every message reaches every other member, but twice
(DUPLICATED deliveries; the fan-out check names the member and message). Why: the
accept loop appends the new connection, and the handler appends it again "to be
sure"; the relay loop sends once per list entry.

Usage: python3 broadcast_bug_registers_twice.py PORT   (otherwise like broadcast_server.py)
"""
import socket
import sys
import threading

HOST = "127.0.0.1"

clients = []
clients_lock = threading.Lock()


def broadcast(data, sender):
    with clients_lock:
        for client in clients[:]:
            if client is sender:
                continue
            try:
                client.sendall(data)
            except OSError:
                while client in clients:
                    clients.remove(client)


def handle(conn, addr):
    with clients_lock:
        clients.append(conn)  # BUG: main() already added it
    try:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            broadcast(data, conn)
    except OSError as e:
        print("Client", addr, "error:", e, flush=True)
    finally:
        with clients_lock:
            while conn in clients:
                clients.remove(conn)
        conn.close()
        print("Left:", addr, flush=True)


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    print(f"Broadcast server listening on {HOST}:{port}", flush=True)
    while True:
        conn, addr = server.accept()
        with clients_lock:
            clients.append(conn)
        print("Joined:", addr, flush=True)
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    main()
