// Headless Chromium drives the chat sample the way two people would: two pages pick
// nicknames, see each other, exchange messages, rename, share images (one small, one
// large enough for the server to stream it) and a plain file, and one leaves.
//
//   node tests/browser/chat.mjs CHAT_EXECUTABLE SCREENSHOT_DIR [--wss MAKE_CERTIFICATES | --redis]
//
// With --wss, the chat serves wss:// and HTTPS with a certificate MAKE_CERTIFICATES
// writes, and permessage-deflate on: every page's WebSocket handshake must have agreed it.
// With --redis, the script starts a redis-server of its own and two chats sharing one
// room through it (chat --redis): ada on one and bob on the other see both names in
// their user lists, each other's messages and files, bob's leave, and, once bob's chat
// is killed outright, its list dropped from ada's page.
//
// Every step waits on what the pages show (never on time) and asserts on it; the first
// failure names its step, leaves screenshots of every open page in SCREENSHOT_DIR and
// exits 1. The chat server is stopped with SIGTERM whatever happens.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { deflateSync } from 'node:zlib';

const CHROMIUM = '/usr/bin/chromium';
// Headless and offline: nothing but the chat server on 127.0.0.1 may be reached.
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];
// Only there to turn a hang into a failure; nothing asserts on speed.
const WAIT_MS = 20_000;

const [chatExecutable, screenshotDir, modeFlag, makeCertificates] = process.argv.slice(2);
const secure = modeFlag === '--wss';
const shared = modeFlag === '--redis';
if (!chatExecutable || !screenshotDir || (modeFlag !== undefined && !shared && (!secure || !makeCertificates))) {
  console.error('usage: node chat.mjs CHAT_EXECUTABLE SCREENSHOT_DIR [--wss MAKE_CERTIFICATES | --redis]');
  process.exit(2);
}
// How long a page keeps the list of a chat it no longer hears from (page.html).
const ROSTER_TTL_MS = 15_000;

// ---- steps: each one logs when it passed, a failure is reported under its name ----

let currentStep = 'start';
async function step(name, body) {
  currentStep = name;
  const result = await body();
  console.log(`ok - ${name}`);
  return result;
}

function check(condition, what, actual) {
  if (!condition) throw new Error(actual === undefined ? what : `${what}; got ${JSON.stringify(actual)}`);
}

function sameJson(actual, expected, what) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}:\n  expected ${e}\n  got      ${a}`);
}

// ---- test files, made here so that nothing binary lives in the repository ----

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// A truecolour PNG of `width` x `height` pixels from `rgb` (3 bytes a pixel, row by row).
function png(width, height, rgb) {
  const chunk = (type, data) => {
    const length = Buffer.alloc(4), crc = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    crc.writeUInt32BE(crc32(typed));
    return Buffer.concat([length, typed, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits a channel, RGB, deflate, no filter, no interlace
  const rows = [];
  for (let y = 0; y < height; ++y) rows.push(Buffer.from([0]), rgb.subarray(y * width * 3, (y + 1) * width * 3));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// A solid colour compresses to a few hundred bytes: one unfragmented frame, relayed whole.
const smallPng = png(64, 64, Buffer.alloc(64 * 64 * 3).fill(Buffer.from([0x24, 0x57, 0xc5])));
// Noise does not compress: well over the server's 64 KiB stream_threshold, so the server
// relays it while it arrives.
const bigPng = png(192, 192, randomBytes(192 * 192 * 3));
const textFile = Buffer.from('not an image: a download link\nünïcödé ✓\n');
check(bigPng.length > 64 * 1024, 'the noise PNG is over 64 KiB', bigPng.length);

// ---- the chat server ----

// Starts the chat sample on a free port of 127.0.0.1, with `more` arguments; `ready`
// resolves to its page's address once it printed it.
function startChat(executable, tls, more = []) {
  const args = tls ? ['--url', 'wss://127.0.0.1:0/', '--cert', tls.chain, '--key', tls.key, '--deflate']
    : ['--url', 'ws://127.0.0.1:0/'];
  const child = spawn(executable, [...args, ...more], { stdio: ['ignore', 'pipe', 'pipe'] });
  // A child that could not be spawned emits 'error' and no 'exit'.
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (error) => resolve({ error }));
  });
  // With --redis, `linked` resolves once it says it shares the room through Redis.
  let onLinked;
  const linked = new Promise((resolve) => { onLinked = resolve; });
  readline.createInterface({ input: child.stderr }).on('line', (line) => {
    process.stderr.write(`[chat] ${line}\n`);
    if (line.startsWith('chat: sharing the room through redis://')) onLinked();
  });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chat printed no address within ${WAIT_MS} ms`)), WAIT_MS);
    exited.then(({ code, signal, error }) => {
      clearTimeout(timer);
      reject(new Error(error ? `cannot start ${executable}: ${error.message}`
        : `chat exited (${signal ?? code}) before printing its address`));
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^chat: open (https?:\/\/\S+) in a browser \(WebSocket at wss?:\/\/\S+\)$/.exec(line);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
  // Handled here too: it rejects when the server exits, also after a failure elsewhere.
  ready.catch(() => {});
  return { child, exited, ready, linked };
}

// SIGTERM, then the server must exit by itself, with status 0.
async function stopChat(chat) {
  if (chat.child.exitCode === null && chat.child.signalCode === null) chat.child.kill('SIGTERM');
  let timer;
  const outcome = await Promise.race([
    chat.exited,
    new Promise((resolve) => { timer = setTimeout(() => resolve(null), WAIT_MS); }),
  ]);
  clearTimeout(timer);
  if (outcome === null) {
    chat.child.kill('SIGKILL');
    throw new Error(`chat did not exit within ${WAIT_MS} ms of SIGTERM`);
  }
  check(outcome.code === 0, 'chat exits with status 0 on SIGTERM', outcome);
}

// A redis-server of the test's own on a free port of 127.0.0.1, without persistence,
// once it accepts connections. (Debian's redis-server: tests/debian-packages.sh.)
async function startRedis() {
  const port = await new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--loglevel', 'warning', '--dir', os.tmpdir()], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (error) => resolve({ error }));
  });
  const redis = { child, exited, url: `redis://127.0.0.1:${port}` };
  for (const deadline = Date.now() + WAIT_MS; ;) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (up) return redis;
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not start (${JSON.stringify(await Promise.race([exited, 'still running']))}; ` +
        'install the Debian package redis-server)');
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---- the people: one browser context each, like two separate browsers ----

// What a person sees, as plain data. Runs in the page (serialized: no closures).
function snapshot() {
  const $ = (selector, root = document) => root.querySelector(selector);
  const text = (node) => (node ? node.textContent : null);
  return {
    status: $('#status').dataset.state,
    dialog: !$('#join-dialog').hidden,
    nickError: text($('#nick-error')),
    me: text($('#me')),
    userCount: text($('#user-count')),
    users: Array.from(document.querySelectorAll('#users li'), (li) => li.textContent),
    servers: Array.from(document.querySelectorAll('#users li'), (li) => li.dataset.server ?? null),
    you: Array.from(document.querySelectorAll('#users li.me'), (li) => li.textContent),
    composerEnabled: !$('#message').disabled && !$('#send').disabled && !$('#file').disabled,
    // The log keeps its newest entry in view, whole (nobody scrolled up in this test).
    newestInView: !$('#log').lastElementChild ||
      $('#log').lastElementChild.getBoundingClientRect().bottom <= $('#log-wrap').getBoundingClientRect().bottom + 1,
    log: Array.from($('#log').children, (li) => {
      if (li.classList.contains('notice')) return { notice: li.textContent, error: li.classList.contains('error') };
      const img = $('img.shared', li), link = $('a.download', li), body = $('.text', li);
      return {
        from: text($('.from', li)),
        mine: li.classList.contains('mine'),
        ...(body && { text: body.textContent, elements: body.children.length }),
        ...(link && { file: link.textContent, download: link.download, sending: $('progress', li) !== null }),
        ...(img && { image: { complete: img.complete, width: img.naturalWidth, height: img.naturalHeight } }),
        ...($('.file-state', li) && { fileState: text($('.file-state', li)) }),
      };
    }),
  };
}

const pageErrors = [];

async function openPerson(browser, url, name, contextOptions) {
  const context = await browser.newContext(contextOptions);
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const person = { name, context, page, open: true, handshakes: [] };
  // What each WebSocket handshake agreed, from the browser's own network log.
  const cdp = await context.newCDPSession(page);
  cdp.on('Network.webSocketHandshakeResponseReceived', ({ response }) => person.handshakes.push(response));
  await cdp.send('Network.enable');
  // Any script error, console error (a CSP violation, a failed load) or dialog (markup
  // that ran as script) fails the test at the end.
  page.on('pageerror', (e) => pageErrors.push(`${name}: uncaught ${e.message}`));
  // (Except once its chat was killed on purpose: its reconnection attempts fail.)
  page.on('console', (m) => {
    if (m.type() === 'error' && !person.chatGone) pageErrors.push(`${name}: console error: ${m.text()}`);
  });
  page.on('dialog', (d) => { pageErrors.push(`${name}: unexpected ${d.type()} dialog: ${d.message()}`); d.dismiss(); });
  await page.goto(url);
  return person;
}

const see = (person) => person.page.evaluate(snapshot);

// Waits until `predicate(snapshot, arg)` holds in the person's page; both run in the
// page, so `predicate` must not use anything from here but `arg`. On timeout, the error
// says what was expected and shows what the page had instead.
async function waitUntil(person, what, predicate, arg = null, timeout = WAIT_MS) {
  // A function, not a string: Playwright would eval() a string in the page, which the
  // page's Content-Security-Policy forbids; a function is compiled through DevTools.
  // eslint-disable-next-line no-new-func
  const inPage = new Function('arg', `return (${predicate})((${snapshot})(), arg);`);
  try {
    await person.page.waitForFunction(inPage, arg, { timeout });
  } catch (e) {
    if (!/Timeout/.test(e.message)) throw e;
    const seen = await see(person).catch(() => '(the page is gone)');
    throw new Error(`${person.name} never saw ${what}; the page shows:\n${JSON.stringify(seen, null, 1)}`);
  }
  return see(person);
}

const hasNotice = (s, text) => s.log.some((e) => e.notice === text);
const messages = (s) => s.log.filter((e) => e.text !== undefined).map(({ from, text }) => ({ from, text }));

async function pickNick(person, nick) {
  await person.page.fill('#nick', nick);
  await person.page.click('#join');
}

// Sends `text` by typing it: Shift+Enter between lines, Enter to send.
async function typeMessage(person, text) {
  const box = person.page.locator('#message');
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (i > 0) await box.press('Shift+Enter');
    await box.pressSequentially(line);
  }
  await box.press('Enter');
}

// Sends `text` by filling the box and clicking Send.
async function clickSend(person, text) {
  await person.page.fill('#message', text);
  await person.page.click('#send');
}

// The SHA-256 of the last shared file named `name` in the person's log, fetched back
// from its object URL (the link's, which is the image's too).
function sharedFileHash(person, name) {
  return person.page.evaluate(async (name) => {
    const links = Array.from(document.querySelectorAll('#log a.download')).filter((a) => a.textContent === name);
    if (!links.length) return null;
    const bytes = await (await fetch(links.at(-1).href)).arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
  }, name);
}

async function screenshot(person, file) {
  if (!person?.open) return;
  await person.page.screenshot({ path: path.join(screenshotDir, file) });
  console.log(`screenshot: ${path.join(screenshotDir, file)}`);
}

// Shares `file` from `sender`; `receiver` must show it: an image inline and loaded, any
// file as a download link, with exactly the bytes sent.
async function shareFile(sender, receiver, file) {
  const isImage = file.mimeType.startsWith('image/');
  await sender.page.setInputFiles('#file', file);
  // The sender shows its own copy at once, with a progress bar until the browser has
  // handed every byte to the network.
  const own = await waitUntil(sender, `its own ${file.name}, sent`, (s, f) => s.log.some((e) =>
    e.file === f.name && e.mine && !e.sending && (!f.isImage || (e.image && e.image.complete && e.image.width > 0))),
    { name: file.name, isImage });
  check(own.log.filter((e) => e.file === file.name).length === 1, `${sender.name} shows its own ${file.name} once`);

  const seen = await waitUntil(receiver, `${file.name} from ${sender.me}`, (s, f) => s.log.some((e) =>
    e.file === f.name && e.from === f.from && (!f.isImage || (e.image && e.image.complete))),
    { name: file.name, from: sender.me, isImage });
  const entry = seen.log.findLast((e) => e.file === file.name);
  check(!entry.mine, `${receiver.name} does not show ${file.name} as its own`);
  check(entry.download === file.name, `the link downloads as ${file.name}`, entry.download);
  if (isImage) {
    check(entry.image.width === file.width && entry.image.height === file.height,
      `${receiver.name} shows ${file.name} as a ${file.width}x${file.height} image`, entry.image);
  } else {
    check(entry.image === undefined, `${receiver.name} shows ${file.name} as a link, not an image`, entry);
  }
  const hash = await sharedFileHash(receiver, file.name);
  check(hash === sha256(file.buffer), `${receiver.name} got the bytes of ${file.name} unchanged ` +
    `(${file.buffer.length} bytes, sha256 ${sha256(file.buffer)})`, hash);
}

// One chat: two people on it, the whole tour.
async function oneChat(browser, url, contextTls) {
  // Two people: a desktop browser in the light theme and a phone-sized one in the dark
  // theme, so that the screenshots show both layouts and both colour schemes.
  const ada = await step('ada opens the page', () =>
    openPerson(browser, url, 'ada', { viewport: { width: 1100, height: 760 }, colorScheme: 'light', ...contextTls }));
  people.push(ada);
  const bob = await step('bob opens the page', () =>
    openPerson(browser, url, 'bob', { viewport: { width: 420, height: 820 }, colorScheme: 'dark', ...contextTls }));
  people.push(bob);

  await step('both pages connect and ask for a nickname', async () => {
    for (const person of [ada, bob]) {
      const s = await waitUntil(person, 'the connection open', (s) => s.status === 'open');
      check(s.dialog, `${person.name} is asked for a nickname`, s);
      check(!s.composerEnabled, `${person.name} cannot send before joining`, s);
      check(person.handshakes.length === 1 && person.handshakes[0].status === 101,
        `${person.name}'s page made one WebSocket handshake, answered with 101`, person.handshakes);
      const headers = Object.fromEntries(Object.entries(person.handshakes[0].headers)
        .map(([k, v]) => [k.toLowerCase(), v]));
      const extensions = headers['sec-websocket-extensions'] ?? '';
      if (secure) {
        check(/^permessage-deflate\b/.test(extensions), `${person.name}'s WebSocket agreed permessage-deflate`, headers);
      } else {
        check(extensions === '', `${person.name}'s WebSocket agreed no extension (the chat runs without --deflate)`, headers);
      }
    }
  });

  await step('ada joins', async () => {
    await pickNick(ada, 'ada');
    const s = await waitUntil(ada, 'itself joined as ada', (s) => s.me === 'ada' && !s.dialog && s.userCount === '1');
    sameJson(s.users, ['ada'], 'ada\'s user list');
    sameJson(s.you, ['ada'], 'ada\'s user list marks ada as you');
    check(hasNotice(s, 'you joined as ada'), 'ada sees "you joined as ada"', s.log);
    check(s.composerEnabled, 'ada can send once joined', s);
    ada.me = 'ada';
  });

  await step('bob is refused a nickname taken but for ASCII case (ADA)', async () => {
    await pickNick(bob, 'ADA');
    const s = await waitUntil(bob, 'an error under the nickname', (s) => s.nickError !== '');
    check(/taken/.test(s.nickError), 'the error says the nickname is taken', s.nickError);
    check(s.dialog && !s.composerEnabled, 'bob is still asked for a nickname', s);
    await screenshot(bob, 'bob-nick-taken.png');
  });

  await step('bob is refused a nickname with a space, by the page', async () => {
    await pickNick(bob, 'bob smith');
    const s = await waitUntil(bob, 'an error under the nickname', (s) => /no spaces/.test(s.nickError));
    check(s.dialog, 'bob is still asked for a nickname', s);
  });

  await step('bob joins; each sees the other online and a join notice', async () => {
    await pickNick(bob, 'bob');
    const b = await waitUntil(bob, 'itself joined as bob', (s) => s.me === 'bob' && !s.dialog && s.userCount === '2');
    sameJson(b.users, ['ada', 'bob'], 'bob\'s user list');
    sameJson(b.you, ['bob'], 'bob\'s user list marks bob as you');
    check(b.nickError === '', 'the nickname error is gone', b.nickError);
    check(hasNotice(b, 'you joined as bob'), 'bob sees "you joined as bob"', b.log);
    const a = await waitUntil(ada, 'bob join', (s) => s.userCount === '2' && s.log.some((e) => e.notice === 'bob joined'));
    sameJson(a.users, ['ada', 'bob'], 'ada\'s user list');
    bob.me = 'bob';
  });

  await step('ada and bob exchange messages; both see them in order, as text', async () => {
    const sent = [
      // Typed: Shift+Enter makes a second line, Enter sends.
      [ada, typeMessage, 'hello bob 👋\nünïcödé ✓ Ελληνικά кириллица — “quotes”'],
      // Markup must show as the characters typed, never become elements or run.
      [bob, clickSend, '<b>x</b> & <img src=x onerror="alert(1)"> &amp; </li><li>'],
      [ada, clickSend, 'see you, bob'],
    ];
    const expected = [];
    for (const [person, send, text] of sent) {
      await send(person, text);
      expected.push({ from: person.me, text });
      for (const viewer of [ada, bob]) {
        await waitUntil(viewer, `the message ${JSON.stringify(text)}`, (s, n) =>
          s.log.filter((e) => e.text !== undefined).length >= n, expected.length);
      }
    }
    for (const viewer of [ada, bob]) {
      const s = await see(viewer);
      sameJson(messages(s), expected, `the messages ${viewer.name} shows`);
      for (const e of s.log.filter((e) => e.text !== undefined)) {
        check(e.elements === 0, `${viewer.name} shows ${JSON.stringify(e.text)} as plain text`, e);
        check(e.mine === (e.from === viewer.me), `${viewer.name} marks only its own messages as its own`, e);
      }
      check((await viewer.page.inputValue('#message')) === '', `${viewer.name}'s message box is empty after sending`);
    }
  });

  await step('bob renames himself bøb; both see it', async () => {
    await bob.page.click('#change-nick');
    await waitUntil(bob, 'the nickname dialog', (s) => s.dialog);
    await pickNick(bob, 'bøb');
    const b = await waitUntil(bob, 'itself renamed', (s) => s.me === 'bøb' && !s.dialog);
    check(hasNotice(b, 'you are now bøb'), 'bob sees "you are now bøb"', b.log);
    await waitUntil(bob, 'the new name in the user list', (s) => JSON.stringify(s.users) === '["ada","bøb"]');
    const a = await waitUntil(ada, 'bob renamed', (s) => s.log.some((e) => e.notice === 'bob is now bøb'));
    await waitUntil(ada, 'the new name in the user list', (s) => JSON.stringify(s.users) === '["ada","bøb"]');
    check(a.userCount === '2', 'still two online', a.userCount);
    bob.me = 'bøb';
  });

  await step('ada shares a small PNG (64x64, one frame); bob shows it', () =>
    shareFile(ada, bob, { name: 'square.png', mimeType: 'image/png', buffer: smallPng, width: 64, height: 64 }));

  await step(`ada shares a big PNG (192x192 noise, ${bigPng.length} bytes, streamed); bob shows it`, () =>
    shareFile(ada, bob, { name: 'noise.png', mimeType: 'image/png', buffer: bigPng, width: 192, height: 192 }));

  await step('bob shares a text file; ada shows a download link', () =>
    shareFile(bob, ada, { name: 'notes.txt', mimeType: 'text/plain', buffer: textFile }));

  await step('the log is in the same order on both pages', async () => {
    const order = (s) => s.log.filter((e) => e.from !== undefined).map((e) => `${e.from}: ${e.text ?? e.file}`);
    sameJson(order(await see(bob)), order(await see(ada)), 'bob\'s messages and files against ada\'s');
  });

  await step('both logs show their newest entry; screenshots of both pages', async () => {
    // (Images grow their entries when they load, after the log has scrolled.)
    for (const person of [ada, bob]) await waitUntil(person, 'its newest entry in view', (s) => s.newestInView);
    await screenshot(ada, 'ada.png');
    await screenshot(bob, 'bob.png');
  });

  await step('bøb closes his page; ada sees him leave', async () => {
    await bob.context.close();
    bob.open = false;
    const a = await waitUntil(ada, 'bøb leave', (s) => s.userCount === '1' && s.log.some((e) => e.notice === 'bøb left'));
    sameJson(a.users, ['ada'], 'ada\'s user list');
    await waitUntil(ada, 'its newest entry in view', (s) => s.newestInView);
    await screenshot(ada, 'ada-alone.png');
  });

}

// Two chats sharing one room through Redis (--redis): ada on the first, bob on the
// second. `chats` and `urls` are theirs, in that order.
async function twoChats(browser, chats, urls) {
  const servers = urls.map((u) => new URL(u).host);
  const ada = await step('ada opens the page of the first chat', () =>
    openPerson(browser, urls[0], 'ada', { viewport: { width: 1100, height: 760 }, colorScheme: 'light' }));
  people.push(ada);
  const bob = await step('bob opens the page of the second chat', () =>
    openPerson(browser, urls[1], 'bob', { viewport: { width: 420, height: 820 }, colorScheme: 'dark' }));
  people.push(bob);
  for (const person of [ada, bob]) await waitUntil(person, 'the connection open', (s) => s.status === 'open');

  await step('ada and bob join, each on their chat; both lists name both, each marking its own', async () => {
    await pickNick(ada, 'ada');
    await waitUntil(ada, 'itself joined as ada', (s) => s.me === 'ada' && !s.dialog);
    ada.me = 'ada';
    await pickNick(bob, 'bob');
    await waitUntil(bob, 'itself joined as bob', (s) => s.me === 'bob' && !s.dialog);
    bob.me = 'bob';
    // ada hears of bob's join at once; bob of ada with her chat's next periodic list.
    const a = await waitUntil(ada, 'bob in the user list', (s) => s.userCount === '2' && s.log.some((e) => e.notice === 'bob joined'));
    sameJson([a.users, a.servers, a.you], [['ada', 'bob'], servers, ['ada']], 'ada\'s user list, its servers, and you');
    const b = await waitUntil(bob, 'ada in the user list', (s) => s.userCount === '2');
    sameJson([b.users, b.servers, b.you], [['bob', 'ada'], [servers[1], servers[0]], ['bob']],
      'bob\'s user list, its servers, and you');
  });

  await step('ada\'s message reaches bob, and bob\'s ada, once', async () => {
    await typeMessage(ada, 'hello from the first chat');
    await waitUntil(bob, 'ada\'s message', (s) => s.log.some((e) => e.text === 'hello from the first chat'));
    await clickSend(bob, 'and hello from the second');
    for (const person of [ada, bob]) {
      const s = await waitUntil(person, 'bob\'s message', (s) => s.log.some((e) => e.text === 'and hello from the second'));
      sameJson(messages(s), [{ from: 'ada', text: 'hello from the first chat' }, { from: 'bob', text: 'and hello from the second' }],
        `${person.name}'s messages`);
    }
  });

  await step('ada shares a small PNG; bob, on the other chat, shows it', () =>
    shareFile(ada, bob, { name: 'square.png', mimeType: 'image/png', buffer: smallPng, width: 64, height: 64 }));

  await step(`bob shares a big PNG (${bigPng.length} bytes, streamed); ada, on the other chat, shows it`, () =>
    shareFile(bob, ada, { name: 'noise.png', mimeType: 'image/png', buffer: bigPng, width: 192, height: 192 }));

  await step('screenshots of both pages', async () => {
    for (const person of [ada, bob]) await waitUntil(person, 'its newest entry in view', (s) => s.newestInView);
    await screenshot(ada, 'ada-shared.png');
    await screenshot(bob, 'bob-shared.png');
  });

  await step('a page on the second chat closes; ada sees carol leave', async () => {
    const carol = await openPerson(browser, urls[1], 'carol', { viewport: { width: 420, height: 820 } });
    people.push(carol);
    await pickNick(carol, 'carol');
    await waitUntil(ada, 'carol in the user list', (s) => s.userCount === '3');
    await carol.context.close();
    carol.open = false;
    const a = await waitUntil(ada, 'carol leave', (s) => s.userCount === '2' && s.log.some((e) => e.notice === 'carol left'));
    sameJson(a.users, ['ada', 'bob'], 'ada\'s user list');
  });

  await step('the second chat is killed; ada\'s page drops its list once it is stale', async () => {
    bob.chatGone = true;
    chats[1].child.kill('SIGKILL');
    await chats[1].exited;
    // No leave crosses: only the age of the second chat's list removes bob.
    const a = await waitUntil(ada, 'bob gone from the user list', (s) => s.userCount === '1', null, ROSTER_TTL_MS + 10_000);
    sameJson(a.users, ['ada'], 'ada\'s user list');
    check(!a.log.some((e) => e.notice === 'bob left'), 'no leave notice for bob', a.log);
    await screenshot(ada, 'ada-alone.png');
  });
}

// ---- the test ----

const people = [];
let chat = null;
let redis = null;
const otherChats = [];
let browser = null;
let tls = null;
let failed = false;

try {
  fs.mkdirSync(screenshotDir, { recursive: true });
  for (const old of fs.readdirSync(screenshotDir)) if (old.endsWith('.png')) fs.rmSync(path.join(screenshotDir, old));

  const chromium = await step('playwright-core and Chromium are installed', async () => {
    check(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install the Debian package chromium ` +
      '(tests/run does, as root: apt-get install chromium)');
    try {
      // Resolved from this file's folder up, so tests/node_modules whatever the cwd.
      return (await import('playwright-core')).chromium;
    } catch (e) {
      if (e.code !== 'ERR_MODULE_NOT_FOUND') throw e;
      throw new Error('playwright-core is not installed: run `npm ci --prefix tests` in the repository');
    }
  });

  if (secure) {
    tls = await step('test certificates are made', () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'websockets-chat-tls-'));
      execFileSync(makeCertificates, [dir], { stdio: ['ignore', 'ignore', 'inherit'] });
      return { dir, chain: path.join(dir, 'chain.pem'), key: path.join(dir, 'key.pem') };
    });
  }
  const urls = [];
  if (shared) {
    redis = await step('redis-server starts', startRedis);
    chat = startChat(chatExecutable, null, ['--redis', redis.url]);
    otherChats.push(startChat(chatExecutable, null, ['--redis', redis.url]));
    urls.push(await step('the second chat prints its address', () => otherChats[0].ready));
    for (const c of [chat, otherChats[0]]) {
      await step('a chat is linked to Redis', () => Promise.race([c.linked, c.ready.then(() => c.exited).then(() => {
        throw new Error('chat exited before it was linked to Redis');
      })]));
    }
  } else {
    chat = startChat(chatExecutable, tls);
  }
  const url = await step('chat prints its address', () => chat.ready);
  check(url.startsWith(secure ? 'https://' : 'http://'), 'the page is served over ' + (secure ? 'HTTPS' : 'HTTP'), url);
  // The test CA is no system's: the pages accept its certificate without checking it.
  const contextTls = secure ? { ignoreHTTPSErrors: true } : {};

  browser = await step('Chromium starts', () => chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // launch() runs Chromium on a fresh temporary profile (--user-data-dir) that it
    // deletes on close; passing --user-data-dir here is refused by Playwright.
    args: CHROMIUM_FLAGS,
  }));

  if (shared) await twoChats(browser, [chat, ...otherChats], [url, ...urls]);
  else await oneChat(browser, url, contextTls);

  await step('no script errors, console errors or dialogs on either page', () => {
    check(pageErrors.length === 0, `the pages reported:\n  ${pageErrors.join('\n  ')}`);
  });
} catch (e) {
  failed = true;
  console.error(`FAILED at step "${currentStep}": ${e.message}`);
  if (pageErrors.length) console.error(`the pages reported:\n  ${pageErrors.join('\n  ')}`);
  for (const person of people) {
    await screenshot(person, `failure-${person.name}.png`).catch((x) => console.error(`no screenshot of ${person.name}: ${x.message}`));
  }
} finally {
  await browser?.close().catch((e) => console.error(`closing Chromium: ${e.message}`));
  try {
    // (A chat that could not be spawned has no pid, and its step said why.)
    if (chat?.child.pid !== undefined) await step('chat stops on SIGTERM', () => stopChat(chat));
  } catch (e) {
    failed = true;
    console.error(`FAILED at step "chat stops on SIGTERM": ${e.message}`);
  }
  // (The second chat of --redis was killed by the test, unless it failed before.)
  for (const other of otherChats) if (other.child.exitCode === null && other.child.signalCode === null) other.child.kill('SIGKILL');
  if (redis && redis.child.exitCode === null) {
    redis.child.kill('SIGTERM');
    await redis.exited;
  }
  if (tls) fs.rmSync(tls.dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
