import socket, sys, time, os
port=int(sys.argv[1]); pid=sys.argv[2]; token=sys.argv[3] if len(sys.argv)>3 else ""
conns=[]
for i in range(400):
    s=socket.create_connection(("127.0.0.1",port)); 
    s.sendall(("POST /api/chat/1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Length: 100000\r\n\r\n{" % token).encode()); conns.append(s)
idle=[]
for i in range(400):
    s=socket.create_connection(("127.0.0.1",port)); s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"); s.recv(4096); idle.append(s)
def fds(): return len(os.listdir("/proc/%s/fd"%pid))
print("t=0 fds", fds(), flush=True)
for t in range(1,10):
    time.sleep(10)
    for s in conns:
        try: s.send(b" ")
        except Exception: pass
    print("t=%ds fds %d"%(t*10, fds()), flush=True)
