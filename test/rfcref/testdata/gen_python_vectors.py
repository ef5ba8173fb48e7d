# Independent generator of new-format tcpcrypt vectors from RFC 8548, in Python.
# Usage: python3 gen_python_vectors.py python_vectors.json  (needs pyca/cryptography)
import hmac, hashlib, json, struct, os
from cryptography.hazmat.primitives.asymmetric import ec, x25519, x448
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

def H(k, m): return hmac.new(k, m, hashlib.sha256).digest()
def expand(prk, info, L):
    out=b''; t=b''; i=1
    while len(out)<L:
        t=H(prk, t+info+bytes([i])); out+=t; i+=1
    return out[:L]

def det(n, tag):
    # deterministic pseudo-random bytes
    out=b''; c=0
    while len(out)<n:
        out+=hashlib.sha256(tag.encode()+bytes([c])).digest(); c+=1
    return out[:n]

def pub_and_es(tep, pa, pb):
    if tep==0x23:
        a=x25519.X25519PrivateKey.from_private_bytes(pa); b=x25519.X25519PrivateKey.from_private_bytes(pb)
        raw=lambda k: k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw(a), raw(b), a.exchange(b.public_key())
    if tep==0x24:
        a=x448.X448PrivateKey.from_private_bytes(pa); b=x448.X448PrivateKey.from_private_bytes(pb)
        raw=lambda k: k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw(a), raw(b), a.exchange(b.public_key())
    curve = ec.SECP256R1() if tep==0x21 else ec.SECP521R1()
    a=ec.derive_private_key(int.from_bytes(pa,'big'), curve); b=ec.derive_private_key(int.from_bytes(pb,'big'), curve)
    def w(k):
        c=k.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        return struct.pack('>H', len(c)+2)+c
    return w(a), w(b), a.exchange(ec.ECDH(), b.public_key())

AEADS=[(1,'aes128gcm',16),(2,'aes256gcm',32),(16,'chacha20poly1305',32)]
def seal(aid, tk, off, rekey, flags, urg, data):
    kl=dict((a,k) for a,_,k in AEADS)[aid]
    K, NR = tk[:kl], tk[kl:]
    pt=bytes([flags]) + (struct.pack('>H',urg) if flags&2 else b'') + data
    clen=len(pt)+16
    ad=bytes([rekey])+struct.pack('>H',clen)
    fid=b'\0'*4+struct.pack('>Q',off)
    n=bytes(x^y for x,y in zip(fid,NR))
    c = ChaCha20Poly1305(K) if aid==16 else AESGCM(K)
    return ad + c.encrypt(n, pt, ad)

names={0x21:'p256',0x22:'p521',0x23:'curve25519',0x24:'curve448'}
vecs=[]
for tep in (0x21,0x22,0x23,0x24):
    plen={0x21:32,0x22:66,0x23:32,0x24:56}[tep]
    pa=det(plen,'a%d'%tep); pb=det(plen,'b%d'%tep)
    if tep==0x22: pa=b'\0'+pa[1:]; pb=b'\0'+pb[1:]
    if tep==0x21: pa=b'\x10'+pa[1:]; pb=b'\x20'+pb[1:]
    na=det(32,'na%d'%tep); nb=det(32,'nb%d'%tep)
    syn=bytes([69,6,0x21,0x22,0x23,0x24])  # A offers all four TEPs (implicit global 0x00)
    synack=bytes([69,4,0x01,tep])  # B: global b=1, then the chosen TEP
    ciphers=[16,1,2]
    A,B,es=pub_and_es(tep,pa,pb)
    i1b=b''.join(struct.pack('>H',c) for c in ciphers)
    body1=bytes([len(ciphers)])+i1b+na+A
    init1=struct.pack('>II',0x15101a0e,8+len(body1))+body1
    body2=struct.pack('>H',16)+nb+B
    init2=struct.pack('>II',0x097105e0,8+len(body2))+body2
    tr=syn+synack
    prk=H(na, tr+init1+init2+es)
    ss=[prk]
    for i in range(2): ss.append(expand(ss[-1],b'\x01',32))
    sid=bytes([tep])+expand(ss[0],b'\x02',32)
    resume=[expand(s,b'\x06',18) for s in ss]
    mk=[expand(ss[0],b'\x03',32)]
    for j in range(2): mk.append(expand(mk[-1],b'\x03',32))
    keys=[]; frames=[]
    for aid,an,kl in AEADS:
        kab=[expand(m,b'\x04',kl+12) for m in mk]; kba=[expand(m,b'\x05',kl+12) for m in mk]
        keys.append(dict(aead=aid,aead_name=an,k_ab=[k.hex() for k in kab],k_ba=[k.hex() for k in kba]))
        for d,ks,start in (('a_to_b',kab,len(init1)),('b_to_a',kba,len(init2))):
            off=start
            plan=[(0,0,0,0,b'hello'),(0,0,2,7,b'urgent!!'),(1,1,0,0,b''),(1,0,0,0,b'gen one'),(2,1,0,0,b'gen two'),(2,0,1,0,b'bye')]
            for g,rk,fl,ur,data in plan:
                fr=seal(aid,ks[g],off,rk,fl,ur,data)
                frames.append(dict(aead=aid,direction=d,generation=g,rekey=rk,flags=fl,urgent=ur,data=data.hex(),offset=off,frame=fr.hex()))
                off+=len(fr)
    # resumed from ss[1], original B opens
    r=resume[1]; nA=det(8,'rna%d'%tep); nB=det(8,'rnb%d'%tep)
    esyn=bytes([tep|0x80])+r[9:18]+nB; esyn=bytes([69,2+len(esyn)])+esyn
    eack=bytes([1,tep|0x80])+r[0:9]+nA; eack=bytes([69,2+len(eack)])+eack
    sn=nA+nB
    rsid=bytes([tep|0x80])+expand(ss[1],b'\x02'+sn,32)
    rmk=expand(ss[1],b'\x03'+sn,32)
    rkeys=[]; rframes=[]
    for aid,an,kl in AEADS:
        kab=expand(rmk,b'\x04',kl+12); kba=expand(rmk,b'\x05',kl+12)
        rkeys.append(dict(aead=aid,aead_name=an,k_ab=[kab.hex()],k_ba=[kba.hex()]))
        for d,k in (('a_to_b',kab),('b_to_a',kba)):
            fr=seal(aid,k,0,0,0,0,b'resumed '+d.encode())
            rframes.append(dict(aead=aid,direction=d,generation=0,rekey=0,flags=0,urgent=0,data=(b'resumed '+d.encode()).hex(),offset=0,frame=fr.hex()))
    vecs.append(dict(tep=tep,tep_name=names[tep],a_private=pa.hex(),b_private=pb.hex(),nonce_a=na.hex(),nonce_b=nb.hex(),
        eno_syn_a=syn.hex(),eno_synack_b=synack.hex(),init1_ciphers=i1b.hex(),init1_ignored='',init2_cipher=16,init2_ignored='',generations=3,
        a_public=A.hex(),b_public=B.hex(),eno_transcript=tr.hex(),init1=init1.hex(),init2=init2.hex(),es=es.hex(),prk=prk.hex(),
        ss=[s.hex() for s in ss],session_id=[sid.hex()],resume=[x.hex() for x in resume],mk=[m.hex() for m in mk],keys=keys,frames=frames,
        resumed=dict(index=1,ss=ss[1].hex(),resume=r.hex(),opener_original_role='B',nonce_a=nA.hex(),nonce_b=nB.hex(),eno_syn=esyn.hex(),eno_synack=eack.hex(),
          sn=sn.hex(),session_id=rsid.hex(),mk=[rmk.hex()],keys=rkeys,frames=rframes)))
import sys
json.dump(dict(comment='Synthetic vectors computed independently in Python (pyca/cryptography) from RFC 8548 by test/rfcref/testdata/gen_python_vectors.py; used to self-check the Go reference encoder.',vectors=vecs), open(sys.argv[1],'w'), separators=(',',':'))
