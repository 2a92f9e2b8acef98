// `bastion status` says which process identity the helper runs with, from its capabilities.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identityLine } from '../../cli/clientCommands.js';

describe('bastion status: the identity line', () => {
  const cases: [string[], RegExp][] = [
    [['sock_diag', 'caller_bpf', 'caller_exe'], /^eBPF caller records \(process and executable\)$/],
    [['sock_diag', 'caller_bpf'], /^eBPF caller records, without the executable/],
    [['sock_diag', 'caller_unproven'], /^unproven: no eBPF/],
    [['sock_diag', 'weak_identity'], /^weak: no eBPF.*--weak-identity/],
    [['sock_diag'], /^unknown \(an older helper\)$/],
  ];
  for (const [capabilities, line] of cases) {
    it(`names ${capabilities.join(', ')} as ${line.source}`, () => {
      assert.match(identityLine(capabilities), line);
    });
  }

  it('says unknown for anything but a list', () => {
    assert.equal(identityLine(undefined), 'unknown (an older helper)');
  });
});
