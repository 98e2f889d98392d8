// An echo server in Node's ws, the peer of our client (tests/interop/client.cpp).
// Listens on 127.0.0.1 and a free port and prints `listening on ws://127.0.0.1:PORT/`;
// with --cert and --key (PEM: the certificate chain and its key), serves wss:// through
// an https server instead and prints `listening on wss://127.0.0.1:PORT/`.
// Every message comes back with its type, except these text commands (README.md):
//   fragmented:binary:COUNT:SIZE    a binary message of SIZE pattern bytes in COUNT frames
//   fragmented:text:COUNT:REPEATS   TEXT_UNIT x REPEATS in COUNT frames, split byte-wise
//   ping:PAYLOAD                    pings; answers `pong:PAYLOAD` when the pong came, else `no-pong`
//   close:CODE:REASON               closes with CODE and REASON
//   drop                            ends TCP without a close frame
//   extensions                      answers `extensions:NAMES`, the extensions agreed on
// permessage-deflate is accepted when offered, and then every message compressed.
//   node tests/interop/node_server.mjs [--cert CHAIN.pem --key KEY.pem]
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';
import { WebSocketServer, TEXT_UNIT, patternBytes, split } from './ws.mjs';

const { values: tls } = parseArgs({ options: { cert: { type: 'string' }, key: { type: 'string' } } });
if (!tls.cert !== !tls.key) {
  console.error('usage: node node_server.mjs [--cert CHAIN.pem --key KEY.pem]');
  process.exit(2);
}

// Commands are short: a long text message is always echoed, without decoding it.
const longestCommand = 256;

function command(ws, text) {
  let m;
  if ((m = /^fragmented:(binary|text):(\d+):(\d+)$/.exec(text))) {
    const count = Number(m[2]);
    const whole = m[1] === 'binary' ? patternBytes(Number(m[3])) : Buffer.from(TEXT_UNIT.repeat(Number(m[3])));
    // Byte-wise pieces: ws sends the first as a text or binary frame, the rest as
    // continuations, and the last with FIN.
    split(whole, count).forEach((piece, k) => ws.send(piece, { binary: m[1] === 'binary', fin: k === count - 1 }));
  } else if ((m = /^ping:(.*)$/s.exec(text))) {
    const timer = setTimeout(() => { ws.off('pong', onPong); ws.send('no-pong'); }, 5000);
    const onPong = (data) => { clearTimeout(timer); ws.send(`pong:${data}`); };
    ws.once('pong', onPong);
    ws.ping(m[1]);
  } else if ((m = /^close:(\d+):(.*)$/s.exec(text))) {
    ws.close(Number(m[1]), m[2]);
  } else if (text === 'drop') {
    ws.terminate();
  } else if (text === 'extensions') {
    ws.send(`extensions:${ws.extensions}`);
  } else {
    return false;
  }
  return true;
}

// threshold 0: ws compresses every message, not only those of 1 KiB and more.
const options = { maxPayload: 64 << 20, perMessageDeflate: { threshold: 0 } };
let wss;
if (tls.cert) {
  // wss://: ws upgrades the https server's requests. A client that refuses our
  // certificate ends its handshake, which is a test case, not a reason to stop.
  const server = createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) });
  server.on('tlsClientError', (error) => console.error(`node_server: TLS: ${error.message.trim()}`));
  wss = new WebSocketServer({ server, ...options });
  server.listen(0, '127.0.0.1', () => console.log(`listening on wss://127.0.0.1:${server.address().port}/`));
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...options });
  wss.on('listening', () => console.log(`listening on ws://127.0.0.1:${wss.address().port}/`));
}
wss.on('connection', (ws) => {
  ws.on('error', (error) => console.error(`node_server: ${error.message}`));
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length < longestCommand && command(ws, data.toString())) return;
    ws.send(data, { binary: isBinary });
  });
});
