// A socket held by processes of different programs (inherited across fork+exec, passed over
// SCM_RIGHTS) is credited to the process the kernel says connected it, else to none of them.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { ProcessResolver, type ProcessResolverOptions } from '../../helper/identify/processResolver.js';
import type { CallerRecord, SocketOwner } from '../../common/types.js';
import { closeFd, fakeProc, removeFakeProcs } from '../support/fakeProc.js';

const ADDR = new Uint8Array([10, 0, 0, 1]);
const CURL = '/usr/bin/curl';
const PYTHON = '/usr/bin/python3.11';

/** pid 100 runs curl, pid 200 python; both hold socket 501 on fd 3. */
function sharedTree(pythonExe = PYTHON): string {
  return fakeProc([
    { pid: 100, startTime: 10, uid: 1000, exe: CURL, sockets: { 3: 501 }, hostNamespaces: true },
    { pid: 200, startTime: 20, uid: 1000, exe: pythonExe, sockets: { 3: 501 }, hostNamespaces: true },
  ]);
}

function resolverFor(procRoot: string, owner: SocketOwner, options: Partial<ProcessResolverOptions> = {}): ProcessResolver {
  return new ProcessResolver({ procRoot, lookupSocket: () => owner, readAheadPerSecond: 0, ...options });
}

/** The kernel's record of pid (sharedTree's), with the executable and start time it had. */
function recordOf(pid: 100 | 200, exe = pid === 100 ? CURL : PYTHON, startTime = pid === 100 ? 10 : 20): CallerRecord {
  const file = statSync(exe);
  return { pid, uid: 1000, process: { startTime, exeDev: file.dev, exeIno: file.ino } };
}

function resolve(resolver: ProcessResolver): ReturnType<ProcessResolver['resolve']> {
  return resolver.resolve(4, 6, ADDR, 40000, ADDR, 80);
}

describe('a socket shared by several processes', () => {
  after(removeFakeProcs);

  it('is credited to the process that connected it, whichever holds it first', () => {
    const root = sharedTree();
    for (const caller of [200, 100] as const) {
      const result = resolve(resolverFor(root, { inode: 501, uid: 1000, caller: recordOf(caller) }));
      assert.equal(result.process?.pid, caller);
      assert.equal(result.process?.exe, caller === 100 ? CURL : PYTHON);
      assert.equal(result.process?.identity, 'host');
    }
  });

  it("is credited to no one ('caller_unknown') when the kernel recorded no caller, whoever holds it", () => {
    const result = resolve(resolverFor(sharedTree(CURL), { inode: 501, uid: 1000, caller: null }));
    assert.deepEqual([result.attribution, result.process, result.socketInode], ['caller_unknown', null, 501]);
  });

  it("is credited to no one when the recorded caller has exec'd another program since, or its pid was reused", () => {
    const root = sharedTree();
    // pid 100 runs curl now; the kernel recorded it running python (it connected, then exec'd curl).
    const execd = resolve(resolverFor(root, { inode: 501, uid: 1000, caller: recordOf(100, PYTHON) }));
    assert.deepEqual([execd.attribution, execd.process], ['caller_unknown', null]);
    // pid 100 started at 10; the recorded process started at 9 (it exited, its pid was reused).
    const reused = resolve(resolverFor(root, { inode: 501, uid: 1000, caller: recordOf(100, CURL, 9) }));
    assert.deepEqual([reused.attribution, reused.process], ['caller_unknown', null]);
    const otherUid = resolve(resolverFor(root, { inode: 501, uid: 1000, caller: { ...recordOf(100), uid: 1001 } }));
    assert.deepEqual([otherUid.attribution, otherUid.process], ['caller_unknown', null]);
  });

  it("without eBPF, a holder's path is not proven ('caller_unproven') unless weakIdentity", () => {
    const root = sharedTree(CURL); // both run curl: not 'shared'
    const unproven = resolve(resolverFor(root, { inode: 501, uid: 1000 }));
    assert.deepEqual([unproven.process?.exe, unproven.process?.identity], [CURL, 'caller_unproven']);
    const weak = resolve(resolverFor(root, { inode: 501, uid: 1000 }, { weakIdentity: true }));
    assert.deepEqual([weak.process?.exe, weak.process?.identity], [CURL, 'host']);
  });

  it('is credited to no one when the process that connected it no longer holds it', () => {
    const root = sharedTree();
    closeFd(root, 200, 3);
    const result = resolve(resolverFor(root, { inode: 501, uid: 1000, caller: recordOf(200) }));
    assert.deepEqual([result.attribution, result.process], ['process_gone', null]);
  });

  it("without a known caller, is 'shared' and credited to no one when both holders are known to run different programs", () => {
    const root = sharedTree();
    const resolver = resolverFor(root, { inode: 501, uid: 1000 });
    resolver.index.warm(); // both fd tables read
    const result = resolve(resolver);
    assert.deepEqual([result.attribution, result.process, result.socketInode], ['shared', null, 501]);
    assert.equal(resolve(resolver).attribution, 'shared', 'and again, not from a cache');
  });

  it('without a known caller, is credited when every holder runs the same program (a plain fork)', () => {
    const root = sharedTree(CURL);
    const resolver = resolverFor(root, { inode: 501, uid: 1000 });
    resolver.index.warm();
    assert.equal(resolve(resolver).process?.exe, CURL);
  });

  it('once the other program has closed its copy, is credited to the one left', () => {
    const root = sharedTree();
    const resolver = resolverFor(root, { inode: 501, uid: 1000 });
    resolver.index.warm();
    assert.equal(resolve(resolver).attribution, 'shared');
    closeFd(root, 200, 3);
    assert.equal(resolve(resolver).process?.pid, 100);
  });
});
