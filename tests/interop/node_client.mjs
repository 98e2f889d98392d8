// Node's ws as a client of samples/echo: text and binary messages from 0 B to 16 MiB and
// fragmented messages, plain and with permessage-deflate (echo --deflate), pings both
// ways, every normal close path, 200 connections at once and the server stopping under
// them; with MAKE_CERTIFICATES, the message cases again over wss:// with deflate,
// verifying echo's certificate against a test CA. One line per case; exits 1 when any
// failed.
//   node tests/interop/node_client.mjs PATH_TO_ECHO [MAKE_CERTIFICATES]
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
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

/**
 * A bare TCP client speaking just enough WebSocket to see each frame as it comes (FIN,
 * RSV1, opcode): the wire checked apart from any WebSocket library, its compressed
 * messages inflated with Node's zlib directly.
 */
class RawPeer {
  /** Upgrades; with `deflate`, offers permessage-deflate and fails unless it is agreed. */
  static open(url, { deflate = false } = {}) {
    const { hostname, port, pathname } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), hostname);
      let received = Buffer.alloc(0);
      socket.once('error', reject);
      socket.once('connect', () => socket.write([
        `GET ${pathname} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13',
        ...(deflate ? ['Sec-WebSocket-Extensions: permessage-deflate'] : []), '', ''].join('\r\n')));
      const onHead = (chunk) => {
        received = Buffer.concat([received, chunk]);
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onHead);
        socket.off('error', reject);
        const head = received.subarray(0, end).toString();
        const agreed = /^Sec-WebSocket-Extensions: *permessage-deflate/im.test(head);
        if (!head.startsWith('HTTP/1.1 101') || agreed !== deflate) {
          socket.destroy();
          reject(new Error(`upgrade answered '${head.split('\r\n')[0]}', permessage-deflate ${agreed ? '' : 'not '}agreed`));
          return;
        }
        resolve(new RawPeer(socket, received.subarray(end + 4)));
      };
      socket.on('data', onHead);
    });
  }

  constructor(socket, rest) {
    this.socket = socket;
    this.buffer = rest;
    this.frames = [];
    this.wake = null;
    this.ended = false;
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.#parse();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      this.#notify();
    });
    this.#parse();
  }

  #parse() {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) break;
      let size = b[1] & 0x7f;
      let at = 2;
      if (size === 126) {
        if (b.length < 4) break;
        size = b.readUInt16BE(2);
        at = 4;
      } else if (size === 127) {
        if (b.length < 10) break;
        size = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b[1] & 0x80) at += 4; // masked: no server may, which the checks below report
      if (b.length < at + size) break;
      this.frames.push({
        fin: (b[0] & 0x80) !== 0, rsv1: (b[0] & 0x40) !== 0, masked: (b[1] & 0x80) !== 0,
        opcode: b[0] & 0x0f, payload: b.subarray(at, at + size),
      });
      this.buffer = b.subarray(at + size);
    }
    this.#notify();
  }

  #notify() {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** The frames of the next data message, up to the one with FIN (control frames skipped). */
  async message() {
    const frames = [];
    for (;;) {
      while (this.frames.length === 0) {
        if (this.ended) throw new Error(`the connection ended after ${frames.length} frames of a message`);
        await new Promise((resolve) => { this.wake = resolve; });
      }
      const frame = this.frames.shift();
      expect(!frame.masked, 'a masked frame from the server');
      if (frame.opcode === 8) throw new Error(`closed after ${frames.length} frames of a message`);
      if (frame.opcode > 8) continue;
      frames.push(frame);
      if (frame.fin) return frames;
    }
  }

  close() {
    this.socket.destroy();
  }
}

/**
 * The bytes of a message's frames, checked as RFC 6455 and RFC 7692 want them: the
 * opcode on the first frame only; with `compressed`, RSV1 on the first frame only and
 * every frame but the last flushed (ending with 00 00 FF FF); without, no RSV1.
 */
function messageBytes(frames, opcode, compressed) {
  const flushed = Buffer.from([0, 0, 0xff, 0xff]);
  frames.forEach((frame, k) => {
    const which = `frame ${k + 1} of ${frames.length}`;
    expect(frame.opcode === (k === 0 ? opcode : 0), `${which} has opcode ${frame.opcode}`);
    expect(frame.rsv1 === (compressed && k === 0), `${which} has RSV1 ${frame.rsv1 ? 'set' : 'clear'}`);
    if (compressed && !frame.fin) expect(frame.payload.subarray(-4).equals(flushed), `${which} is not flushed`);
  });
  const payload = Buffer.concat(frames.map((frame) => frame.payload));
  if (!compressed) return payload;
  return zlib.inflateRawSync(Buffer.concat([payload, flushed]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
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

// Three echoes: the plain one most cases use, one accepting permessage-deflate, one
// relaying with --broadcast; and with MAKE_CERTIFICATES, one serving wss:// with deflate.
let echo, deflating, broadcasting, secure = null;
try {
  echo = await startEcho('--max-connections', '300');
  deflating = await startEcho('--deflate');
  broadcasting = await startEcho('--deflate', '--broadcast');
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

// echo --deflate --broadcast relays a fragmented message to everyone (the sender
// included) as a stream while it arrives: one compressed message for the clients that
// agreed permessage-deflate, fragments compressed as they come (RSV1 on the first frame
// only), and the plain message for the others.
const relayed = [[true, patternBytes(1 << 20), 16], [false, Buffer.from(TEXT_UNIT.repeat(3000)), 9]];
for (const [binary, whole, count] of relayed) {
  const kind = binary ? 'binary' : 'text';
  test(`deflate --broadcast: a ${kind} message in ${count} frames relayed as a compressed stream`, async () => {
    const sender = await Client.open(broadcasting.url, { deflate: true });
    const other = await Client.open(broadcasting.url, { deflate: true });
    const plain = await Client.open(broadcasting.url);
    const raw = await RawPeer.open(broadcasting.url, { deflate: true });
    const rawPlain = await RawPeer.open(broadcasting.url);
    try {
      // Everyone is in once everyone has a first broadcast (a whole message).
      const ready = Buffer.from('ready');
      sender.ws.send(ready, { binary: false });
      for (const client of [sender, other, plain]) expectMessage(await client.next('first broadcast'), ready, false);
      for (const peer of [raw, rawPlain]) expectSame(messageBytes(await peer.message(), 1, false), ready);

      sendFragmented(sender, split(whole, count), binary);
      for (const client of [sender, other, plain]) expectMessage(await client.next('relayed message'), whole, binary);
      const compressed = await raw.message();
      expect(compressed.length > 1, 'the relay came in one frame, not as a stream');
      const compressedSize = compressed.reduce((sum, frame) => sum + frame.payload.length, 0);
      expect(compressedSize < whole.length / 2, `${compressedSize} B on the wire for ${whole.length}`);
      expectSame(messageBytes(compressed, binary ? 2 : 1, true), whole);
      expectSame(messageBytes(await rawPlain.message(), binary ? 2 : 1, false), whole);
    } finally {
      raw.close();
      rawPlain.close();
    }
    await Promise.all([sender, other, plain].map((client) => client.close(1000)));
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

test('echo --deflate --broadcast stopping on SIGTERM exits with 0', async () => {
  const how = await broadcasting.stop();
  expect(how === 0, `echo --deflate --broadcast ended with ${how}`);
});

process.exitCode = (await runAll()) === 0 ? 0 : 1;
// A failed case may leave connections open: end here instead of waiting for them.
process.exit();
