// A socket held by processes of different programs (inherited across fork+exec, passed over
// SCM_RIGHTS) is credited to the process the kernel says connected it, else to none of them.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ProcessResolver } from '../../helper/identify/processResolver.js';
import type { SocketOwner } from '../../common/types.js';
import { closeFd, fakeProc, removeFakeProcs } from '../support/fakeProc.js';

const ADDR = new Uint8Array([10, 0, 0, 1]);
const CURL = '/usr/bin/curl';
const PYTHON = '/usr/bin/python3.11';

/** pid 100 runs curl, pid 200 python; both hold socket 501 on fd 3. */
function sharedTree(pythonExe = PYTHON): string {
  return fakeProc([
    { pid: 100, startTime: 10, uid: 1000, exe: CURL, sockets: { 3: 501 } },
    { pid: 200, startTime: 20, uid: 1000, exe: pythonExe, sockets: { 3: 501 } },
  ]);
}

function resolverFor(procRoot: string, owner: SocketOwner): ProcessResolver {
  return new ProcessResolver({ procRoot, lookupSocket: () => owner, readAheadPerSecond: 0 });
}

function resolve(resolver: ProcessResolver): ReturnType<ProcessResolver['resolve']> {
  return resolver.resolve(4, 6, ADDR, 40000, ADDR, 80);
}

describe('a socket shared by several processes', () => {
  after(removeFakeProcs);

  it('is credited to the process that connected it, whichever holds it first', () => {
    const root = sharedTree();
    for (const caller of [200, 100]) {
      const result = resolve(resolverFor(root, { inode: 501, uid: 1000, caller }));
      assert.equal(result.process?.pid, caller);
      assert.equal(result.process?.exe, caller === 100 ? CURL : PYTHON);
    }
  });

  it('is credited to no one when the process that connected it no longer holds it', () => {
    const root = sharedTree();
    closeFd(root, 200, 3);
    const result = resolve(resolverFor(root, { inode: 501, uid: 1000, caller: 200 }));
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
