import json, sys, time, threading, http.client, os
port=int(sys.argv[1]); n=int(sys.argv[2]); token=os.environ['T']; random_order = len(sys.argv)>3
now=int(time.time()*1000)
span=38*86400*1000
def body(b):
    ms=[]
    for k in range(1000):
        i=b*1000+k
        slot = (i*2654435761)%n if random_order else i
        ms.append({"body":"reminder %d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"%i,"deliver_at": now+3600_000+slot*span//n})
    return json.dumps({"messages":ms})
lock=threading.Lock(); nxt=[0]; lat=[]
def worker():
    c=http.client.HTTPConnection('127.0.0.1',port)
    while True:
        with lock:
            b=nxt[0]; nxt[0]+=1
        if b*1000>=n: return
        data=body(b)
        while True:
            t=time.time()
            c.request('POST','/v1/topics/d/messages',data,{'Authorization':'Bearer '+token,'Content-Type':'application/json'})
            r=c.getresponse(); r.read()
            if r.status==200: break
            print('status',r.status); time.sleep(0.2)
        lat.append(time.time()-t)
t0=time.time()
ts=[threading.Thread(target=worker) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
el=time.time()-t0
lat.sort()
print("published %d delayed messages in %.1f s (%.0f msg/s), batch of 1000 p50 %.0f ms p99 %.0f ms"%(n,el,n/el,lat[len(lat)//2]*1000,lat[int(len(lat)*.99)]*1000))
