import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { enginesNode, NodeVersionError, nodeTooOld } from '../../src/cli/node-version.js';

describe('nodeTooOld: the CLI refuses a Node older than package.json engines, with a coded error', () => {
  it('refuses Node 20 against >=24, naming both versions and the Node that npm ci installs', () => {
    const error = nodeTooOld('v20.20.2', '>=24');
    assert.ok(error instanceof NodeVersionError);
    assert.equal(error.code, 'NODE_TOO_OLD');
    assert.match(error.message, /needs Node 24 or later .* this is Node v20\.20\.2; .*npm start, npx tunebot.*node_modules\/\.bin/u);
  });

  it('accepts the minimum major, any release of it, and later majors', () => {
    for (const version of ['v24.0.0', 'v24.22.3', 'v25.1.0', 'v26.12.1']) assert.equal(nodeTooOld(version, '>=24'), null, version);
    assert.ok(nodeTooOld('v23.11.1', '>=24'), 'the major before');
  });

  it('throws on an engines range it cannot read rather than letting any Node through', () => {
    for (const engines of ['^24', '24.x', '', '>=24 <26']) assert.throws(() => nodeTooOld('v24.22.3', engines), /engines\.node is .* not ">=N"/u, engines);
  });

  it("reads package.json's engines, which the Node running these tests meets", (t) => {
    t.diagnostic(`these tests run under Node ${process.version} (${process.execPath})`);
    const engines = enginesNode();
    assert.match(engines, /^>=\d+$/u);
    assert.equal(nodeTooOld(process.version, engines), null);
  });
});
