// Node's ws as a client of samples/echo: text and binary messages from 0 B to 16 MiB and
// fragmented messages, plain and with permessage-deflate (echo --deflate), pings both
// ways, every normal close path, 200 connections at once and the server stopping under
// them; with MAKE_CERTIFICATES, the message cases again over wss:// with deflate,
// verifying echo's certificate against a test CA. One line per case; exits 1 when any
// failed.
//   node tests/interop/node_client.mjs PATH_TO_ECHO [MAKE_CERTIFICATES]
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSocket, TEXT_UNIT, patternBytes, split } from './ws.mjs';

const [echoPath, makeCertificates] = process.argv.slice(2);
if (!echoPath) {
  console.error('usage: node node_client.mjs PATH_TO_ECHO [MAKE_CERTIFICATES]');
  process.exit(2);
}

// ---- The echo server, as a child process ----

// Every echo started; whatever way this script ends, none outlives it.
const children = new Set();
process.on('exit', () => { for (const child of children) child.kill('SIGKILL'); });

/** Starts echo on a free port; resolves once it printed the url it listens on. */
function startEcho(...options) {
  const child = spawn(echoPath, ['--url', 'ws://127.0.0.1:0/', ...options], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    children.delete(child);
    resolve(signal ?? code);
  }));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('echo printed no url within 30 s')), 30000);
    child.on('error', (error) => { clearTimeout(timer); reject(error); });
    exited.then((how) => { clearTimeout(timer); reject(new Error(`echo ended (${how}) before printing its url`)); });
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /echo: listening on (\S+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolve({
        url: m[1],
        /** SIGTERM; resolves with the exit code (or signal name) once it has ended. */
        stop() {
          child.kill('SIGTERM');
          return exited;
        },
      });
    });
  });
}

// ---- Connections ----

/** A ws client with its messages in a queue and its close as a promise. */
class Client {
  /**
   * Connects; with `deflate`, offers permessage-deflate and fails unless it is agreed;
   * `ca` (PEM) is what a wss:// server's certificate must chain to.
   */
  static open(url, { deflate = false, ca } = {}) {
    // threshold 0: ws compresses every message, not only those of 1 KiB and more.
    const ws = new WebSocket(url, { perMessageDeflate: deflate ? { threshold: 0 } : false, ...(ca && { ca }) });
    return new Promise((resolve, reject) => {
      ws.once('open', () => {
        if (deflate && ws.extensions !== 'permessage-deflate') {
          ws.terminate();
          reject(new Error(`permessage-deflate offered, '${ws.extensions}' agreed`));
          return;
        }
        resolve(new Client(ws));
      });
      ws.once('error', reject);
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiter = null;
    this.pings = 0; // pings from the server, which ws answers by itself
    ws.on('message', (data, isBinary) => this.#push({ data, isBinary }));
    ws.on('ping', () => ++this.pings);
    ws.on('error', (error) => { this.error = error; });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  #push(message) {
    if (this.waiter) {
      const wake = this.waiter;
      this.waiter = null;
      wake(message);
    } else {
      this.queue.push(message);
    }
  }

  /** The next message; throws when the connection closes first. */
  next(what = 'echo') {
    const message = this.queue.length ? Promise.resolve(this.queue.shift()) : new Promise((resolve) => { this.waiter = resolve; });
    const closed = this.closed.then(({ code }) => { throw new Error(`the connection closed (${code}) before the ${what}`); });
    return Promise.race([message, closed]);
  }

  /** Sends `data` (text unless `binary`) and checks that the same comes back. */
  async roundTrip(data, binary) {
    this.ws.send(data, { binary });
    expectMessage(await this.next(), data, binary);
  }

  /** Closes and resolves with the server's answer. */
  close(code, reason) {
    this.ws.close(code, reason);
    return this.closed;
  }
}

// ---- Checks and payloads ----

function expect(ok, what) {
  if (!ok) throw new Error(what);
}

function expectSame(got, expected) {
  if (got.equals(expected)) return;
  expect(got.length === expected.length, `${got.length} bytes came back where ${expected.length} were sent`);
  let at = 0;
  while (got[at] === expected[at]) ++at;
  throw new Error(`byte ${at} of ${got.length} differs: ${got[at]} instead of ${expected[at]}`);
}

function expectMessage({ data, isBinary }, expected, binary) {
  expect(isBinary === binary, `a ${isBinary ? 'binary' : 'text'} message came back for a ${binary ? 'binary' : 'text'} one`);
  expectSame(data, expected);
}

async function expectClose(client, code) {
  const closed = await client.closed;
  expect(closed.code === code, `closed with ${closed.code} ('${closed.reason}'), not ${code}`);
}

/** Valid UTF-8 of exactly `size` bytes: whole TEXT_UNITs, then ASCII. */
function utf8Text(size) {
  const unit = Buffer.from(TEXT_UNIT);
  const text = Buffer.alloc(size, unit);
  text.fill('.', size - (size % unit.length));
  return text;
}

// ---- The runner ----

const cases = [];
function test(name, body, limitMs = 60000) {
  cases.push({ name, body, limitMs });
}

async function runAll() {
  let failed = 0;
  for (const { name, body, limitMs } of cases) {
    let timer;
    const limit = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result within ${limitMs / 1000} s`)), limitMs);
    });
    try {
      await Promise.race([body(), limit]);
      console.log(`ok   ${name}`);
    } catch (error) {
      ++failed;
      console.log(`FAIL ${name}: ${error.message}`);
    } finally {
      clearTimeout(timer);
    }
  }
  console.log(`${cases.length - failed} passed, ${failed} failed`);
  return failed;
}

// ---- The cases ----

// Two echoes: the plain one most cases use, and one accepting permessage-deflate; and
// with MAKE_CERTIFICATES, a third serving wss:// with deflate.
let echo, deflating, secure = null;
try {
  echo = await startEcho('--max-connections', '300');
  deflating = await startEcho('--deflate');
  if (makeCertificates) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'websockets-interop-tls-'));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    execFileSync(makeCertificates, [dir], { stdio: ['ignore', 'ignore', 'inherit'] });
    secure = await startEcho('--url', 'wss://localhost:0/', '--cert', path.join(dir, 'chain.pem'),
      '--key', path.join(dir, 'key.pem'), '--deflate');
    secure.ca = fs.readFileSync(path.join(dir, 'ca.pem'));
  }
} catch (error) {
  console.log(`FAIL starting ${echoPath}: ${error.message}`);
  process.exit(1);
}
const { url } = echo;

/** Sends `whole` in `pieces` frames ({fin: false} on all but the last). */
function sendFragmented(client, pieces, binary) {
  pieces.forEach((piece, k) => client.ws.send(piece, { binary, fin: k === pieces.length - 1 }));
}

/** The message cases, plain or (`deflate`) compressed both ways; over TLS with `ca`. */
function messageCases(url, deflate, ca) {
  const mode = `${ca ? 'wss: ' : ''}${deflate ? 'deflate: ' : ''}`;
  const open = () => Client.open(url, { deflate, ca });
  for (const binary of [false, true]) {
    for (const size of [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20]) {
      test(`${mode}${binary ? 'binary' : 'text'} message of ${size} B echoed`, async () => {
        const client = await open();
        await client.roundTrip(binary ? patternBytes(size) : utf8Text(size), binary);
        await client.close(1000);
      }, 120000);
    }
  }

  test(`${mode}text message in 9 frames, characters split across frames, echoed whole`, async () => {
    const client = await open();
    const whole = Buffer.from(TEXT_UNIT.repeat(1000));
    sendFragmented(client, split(whole, 9), false);
    expectMessage(await client.next(), whole, false);
    await client.close(1000);
  });

  test(`${mode}binary message of 1 MiB in 16 frames, echoed whole`, async () => {
    const client = await open();
    const whole = patternBytes(1 << 20);
    sendFragmented(client, split(whole, 16), true);
    expectMessage(await client.next(), whole, true);
    await client.close(1000);
  });

  test(`${mode}binary message with empty first and last frames, echoed whole`, async () => {
    const client = await open();
    const whole = patternBytes(2);
    sendFragmented(client, [Buffer.alloc(0), ...split(whole, 2), Buffer.alloc(0)], true);
    expectMessage(await client.next(), whole, true);
    await client.close(1000);
  });

  test(`${mode}a ping between fragments: pong, then the message whole and the next one in order`, async () => {
    const client = await open();
    const whole = patternBytes(5000);
    const [first, second] = split(whole, 2);
    const pong = new Promise((resolve) => client.ws.once('pong', resolve));
    client.ws.send(first, { binary: true, fin: false });
    client.ws.ping('between');
    client.ws.send(second, { binary: true, fin: true });
    client.ws.send('next');
    expectSame(await pong, Buffer.from('between'));
    expectMessage(await client.next(), whole, true);
    expectMessage(await client.next(), Buffer.from('next'), false);
    await client.close(1000);
  });
}

messageCases(url, false);
messageCases(deflating.url, true);
if (secure) {
  messageCases(secure.url, true, secure.ca);
  test('wss: a client that does not trust the certificate is refused by its own check', async () => {
    const refused = await Client.open(secure.url).then(() => null, (error) => error);
    expect(refused && /self[- ]signed|unable to (get|verify)/i.test(refused.message),
      `connecting without the test CA ended with ${refused ? refused.message : 'a connection'}`);
  });
}

for (const payload of ['', 'interop', 'p'.repeat(125)]) {
  test(`ping of ${payload.length} B, pong with the same payload`, async () => {
    const client = await Client.open(url);
    const pong = new Promise((resolve) => client.ws.once('pong', resolve));
    client.ws.ping(payload);
    expectSame(await pong, Buffer.from(payload));
    await client.close(1000);
  });
}

test("the server's idle pings, answered by ws: the connection stays open", async () => {
  // A second echo that pings after 1 s of silence and closes when no answer comes
  // within 1 s more (a margin for loaded machines: this is not a speed test).
  const idle = await startEcho('--timeout', '1000');
  try {
    const client = await Client.open(idle.url);
    await Promise.race([
      new Promise((resolve) => client.ws.on('ping', () => client.pings >= 2 && resolve())),
      client.closed.then(({ code }) => { throw new Error(`closed with ${code} after ${client.pings} pings`); }),
    ]);
    await client.roundTrip(Buffer.from('still here'), false);
    await client.close(1000);
  } finally {
    await idle.stop();
  }
});

for (const [code, reason] of [[1000, 'done'], [1001, 'leaving'], [4000, 'application']]) {
  test(`close ${code} '${reason}', answered with ${code}`, async () => {
    const client = await Client.open(url);
    await client.roundTrip(Buffer.from('before closing'), false);
    client.ws.close(code, reason);
    await expectClose(client, code);
  });
}

test('close without a code, answered with 1000', async () => {
  const client = await Client.open(url);
  client.ws.close();
  await expectClose(client, 1000);
});

test('the client drops TCP: the server serves on', async () => {
  const dropped = await Client.open(url);
  await dropped.roundTrip(Buffer.from('about to vanish'), false);
  dropped.ws.terminate();
  await expectClose(dropped, 1006);
  const next = await Client.open(url);
  await next.roundTrip(Buffer.from('anyone there?'), false);
  await next.close(1000);
});

// 200 connections open together; they stay open for the server's stop, next.
const crowd = [];
test('200 connections at once, each echoed', async () => {
  const opened = await Promise.all(Array.from({ length: 200 }, () => Client.open(url)));
  crowd.push(...opened);
  await Promise.all(crowd.map(async (client, i) => {
    await client.roundTrip(Buffer.from(`connection ${i}`), false);
    await client.roundTrip(patternBytes(1000 + i), true);
  }));
});

test('echo stopping on SIGTERM: every client gets 1001, echo exits with 0', async () => {
  expect(crowd.length > 0, 'no connections left open by the previous case');
  const how = echo.stop();
  const codes = (await Promise.all(crowd.map((client) => client.closed))).map((closed) => closed.code);
  const others = codes.filter((code) => code !== 1001);
  expect(others.length === 0, `${others.length} of ${codes.length} closed otherwise, with ${[...new Set(others)]}`);
  expect(await how === 0, `echo ended with ${await how}`);
});

test('echo --deflate stopping on SIGTERM exits with 0', async () => {
  const how = await deflating.stop();
  expect(how === 0, `echo --deflate ended with ${how}`);
  if (secure) expect(await secure.stop() === 0, 'the wss:// echo exits with 0');
});

process.exitCode = (await runAll()) === 0 ? 0 : 1;
// A failed case may leave connections open: end here instead of waiting for them.
process.exit();
