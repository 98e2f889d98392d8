// Node's ws for the interop scripts: exactly tests/node_modules/ws, as tests/package.json
// locks it, found from this file rather than from the working directory (meson runs the
// scripts from the build directory) and never from a node_modules further up. Missing,
// it ends the process with the command that installs it: the tests fail, never skip.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../package.json', import.meta.url));

function load() {
  try {
    return require('./node_modules/ws');
  } catch (error) {
    console.error(`interop: Node's ws is not installed (${error.code ?? error.message}); ` +
      'run `npm ci --prefix tests` in the source tree (tests/run does it)');
    process.exit(1);
  }
}

export const { WebSocket, WebSocketServer } = load();

// The text the peers split into fragments (`fragmented:text:COUNT:REPEATS`): characters
// of 1, 2, 3 and 4 bytes in UTF-8, so that byte-wise splits fall inside characters.
export const TEXT_UNIT = 'Hé€𝄞!';

// The bytes of `fragmented:binary` and of the binary payloads: byte i is i % 251, a
// period that no power-of-two boundary (frame, buffer or fragment) lines up with.
export function patternBytes(size) {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; ++i) bytes[i] = i % 251;
  return bytes;
}

// `whole` cut into `count` consecutive pieces of nearly equal size (some may be empty).
export function split(whole, count) {
  const pieces = [];
  for (let k = 0; k < count; ++k)
    pieces.push(whole.subarray(Math.floor(k * whole.length / count), Math.floor((k + 1) * whole.length / count)));
  return pieces;
}
