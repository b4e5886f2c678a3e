"""BUG: the chat server does not recognise `exit`; it answers it like any message.

Symptom a tester sees: the turns before `exit` are right, but when the client sends
`exit` the server prints it, consumes the operator's next stdin line and sends it
as a reply instead of closing the session; it ends only when the client's
connection closes (or stdin runs out). The chat check reports "exit did not end
the session cleanly" (an unexpected reply after exit, one stdin line too many used).

Usage: python3 chat_bug_ignores_exit.py PORT   (otherwise like chat_server.py)
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen(1)
    print(f"Chat server waiting on {HOST}:{port}", flush=True)

    conn, addr = server.accept()
    print("Client connected:", addr, flush=True)
    with conn:
        while True:
            data = conn.recv(1024)
            if not data:
                print("Client disconnected", flush=True)
                break
            print("Client:", data.decode(errors="replace"), flush=True)
            # BUG: missing `if message == "exit": break`
            try:
                reply = input("You: ")
            except EOFError:
                break
            try:
                conn.sendall(reply.encode())
            except OSError:
                break
    server.close()


if __name__ == "__main__":
    main()
