"""BUG: forks a child that ignores SIGTERM and keeps serving on the listening socket.

Symptom a tester sees: echoes are correct (parent and child both accept and serve,
iteratively), but stopping the server with SIGTERM, even to its whole process
group, leaves the child running: the port still accepts connections and a later
run on the same port finds it busy. A harness must escalate to SIGKILL on the
process group (and should report the leftover process). Why: the child inherited
the listening socket and was told to ignore SIGTERM.

(Safety net for this example only: the child ends itself after 120 s via SIGALRM.)

Usage: python3 echo_bug_forks_stubborn_child.py PORT
"""
import os
import signal
import socket
import sys

HOST = "127.0.0.1"


def serve(name, server):
    while True:
        conn, addr = server.accept()
        print(f"{name}: connected by {addr}", flush=True)
        with conn:
            try:
                while True:
                    data = conn.recv(1024)
                    if not data:
                        break
                    conn.sendall(data)
            except OSError as e:
                print(f"{name}: client error: {e}", flush=True)


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    print(f"Echo server listening on {HOST}:{port}", flush=True)

    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # BUG: the child won't stop
        signal.alarm(120)  # safety net (see docstring)
        print(f"child {os.getpid()} serving too", flush=True)
        serve("child", server)
    else:
        serve("parent", server)


if __name__ == "__main__":
    main()
