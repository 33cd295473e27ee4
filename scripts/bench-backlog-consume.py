"""Consumer side of scripts/bench-backlog.sh: 4 clients receive 64 + ack from group `backlog`
for SECS seconds while the RSS of the gateway PID is sampled every 2 s.

usage: T=<token> python3 bench-backlog-consume.py <port> <secs> <gateway pid>
"""
import json, sys, time, threading, http.client, os, subprocess
port=int(sys.argv[1]); secs=float(sys.argv[2]); pid=sys.argv[3]; token=os.environ['T']
stop=time.time()+secs; got=[0]; byts=[0]; lock=threading.Lock(); rss=[]
def worker(c_id):
    c=http.client.HTTPConnection('127.0.0.1',port, timeout=60)
    h={'Authorization':'Bearer '+token,'Content-Type':'application/json'}
    while time.time()<stop:
        c.request('POST','/v1/groups/backlog/receive',json.dumps({"max_messages":64,"wait_ms":1000}),h)
        r=c.getresponse(); b=r.read()
        if r.status!=200: print('receive',r.status,b[:200]); time.sleep(0.5); continue
        ms=json.loads(b)['messages']
        if not ms: continue
        c.request('POST','/v1/groups/backlog/ack',json.dumps({"receipt_handles":[m['receipt_handle'] for m in ms]}),h)
        r=c.getresponse(); r.read()
        with lock:
            got[0]+=len(ms); byts[0]+=sum(len(m.get('body','')) for m in ms)
def sampler():
    while time.time()<stop:
        out=subprocess.run(['ps','-o','rss=','-p',pid],capture_output=True,text=True).stdout.strip()
        if out: rss.append(int(out))
        time.sleep(2)
ts=[threading.Thread(target=worker,args=(i,)) for i in range(4)]+[threading.Thread(target=sampler)]
t0=time.time(); [t.start() for t in ts]; [t.join() for t in ts]; el=time.time()-t0
print("rss series MiB:", [r//1024 for r in rss[::5]]); print("consumed %d messages, %.2f GB in %.0f s (%.0f msg/s, %.0f MB/s); gateway RSS max %.0f MiB, last %.0f MiB, samples %d"%(got[0],byts[0]/1e9,el,got[0]/el,byts[0]/el/1e6,max(rss)/1024,rss[-1]/1024,len(rss)))
