// Lossless JSON reading for the preview widget.
//
// `JSON.parse` turns every number into a double, so a count above 2^53 (counts are u64) would
// change. The widget must hand the agent's inputs to the wasm core as the exact text the agent
// sent, and show report values as the exact text of the wire bytes. This reader keeps, for
// every value, the span of source text it came from. It accepts only what JSON.parse accepts
// (it uses JSON.parse for strings and for validation of scalars).

/**
 * @typedef {{type: 'object', start: number, end: number, members: Map<string, Span>}
 *   | {type: 'array', start: number, end: number, items: Span[]}
 *   | {type: 'string'|'number'|'literal', start: number, end: number}} Span
 */

const WS = new Set([' ', '\t', '\n', '\r']);

/**
 * Parses `text` and returns the span tree of its value.
 * @param {string} text
 * @returns {Span}
 */
export function parseSpans(text) {
  let i = 0;
  const fail = (what) => {
    throw new SyntaxError(`JSON: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && WS.has(text[i])) i++;
  };
  const string = () => {
    const start = i;
    i++; // opening quote
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    return { type: 'string', start, end: i };
  };
  const value = () => {
    ws();
    const start = i;
    const c = text[i];
    if (c === '{') {
      i++;
      const members = new Map();
      ws();
      if (text[i] === '}') {
        i++;
        return { type: 'object', start, end: i, members };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const key = string();
        ws();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        members.set(JSON.parse(text.slice(key.start, key.end)), value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return { type: 'object', start, end: i, members }; }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const items = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { type: 'array', start, end: i, items };
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return { type: 'array', start, end: i, items }; }
        fail('expected "," or "]"');
      }
    }
    if (c === '"') {
      const s = string();
      JSON.parse(text.slice(s.start, s.end)); // validates escapes
      return s;
    }
    const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) fail('unexpected character');
    i += m[0].length;
    return { type: /^[tfn]/.test(m[0]) ? 'literal' : 'number', start, end: i };
  };
  const root = value();
  ws();
  if (i !== text.length) fail('trailing text');
  return root;
}

/**
 * The span at a dotted path (`entities_count.gateways.total`), or undefined.
 * @param {Span} root
 * @param {string} path
 * @returns {Span | undefined}
 */
export function spanAt(root, path) {
  let node = root;
  for (const key of path.split('.')) {
    if (!node || node.type !== 'object') return undefined;
    node = node.members.get(key);
  }
  return node;
}
