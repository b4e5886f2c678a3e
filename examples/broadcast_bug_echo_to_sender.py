"""BUG: relays every message to ALL clients, including the one who sent it.

Symptom a tester sees: fan-out to the others is fine, but every sender also gets
its own messages back (a "sender exclusion" failure; each client receives one
unexpected copy of everything it sends). Passes only a scenario that sets
include_sender = true. Why: the relay loop lacks `if client is not sender`.

Usage: python3 broadcast_bug_echo_to_sender.py PORT   (otherwise like broadcast_server.py)
"""
import socket
import sys
import threading

HOST = "127.0.0.1"

clients = []
clients_lock = threading.Lock()


def broadcast(data, sender):
    with clients_lock:
        for client in clients[:]:  # BUG: the sender is not skipped
            try:
                client.sendall(data)
            except OSError:
                clients.remove(client)
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def handle(conn, addr):
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
            if conn in clients:
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
