// Unit tests of the widget's lossless JSON reader (no browser needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpans, spanAt } from '../src/json-spans.js';

const slice = (text, path) => {
  const s = spanAt(parseSpans(text), path);
  return s && text.slice(s.start, s.end);
};

test('u64 counts keep their exact text', () => {
  const text = '{"inputs":{"a":{"total":18446744073709551615}},"sha256":"x"}';
  assert.equal(slice(text, 'inputs.a.total'), '18446744073709551615');
  assert.equal(slice(text, 'inputs'), '{"a":{"total":18446744073709551615}}');
});

test('whitespace, escapes and nesting are handled like JSON.parse', () => {
  const text = ' {\n "k\\"ey" : [1, {"x": "a\\u2028\\"}"}, [], {}],\t"b": null , "c":true,"d":-1.5e3 } ';
  const root = parseSpans(text);
  assert.deepEqual([...root.members.keys()], ['k"ey', 'b', 'c', 'd']);
  assert.equal(slice(text, 'k"ey'), '[1, {"x": "a\\u2028\\"}"}, [], {}]');
  assert.equal(slice(text, 'd'), '-1.5e3');
  assert.equal(slice(text, 'b'), 'null');
  assert.equal(spanAt(root, 'missing'), undefined);
  assert.equal(spanAt(root, 'b.deeper'), undefined);
  // Every span's text parses to what JSON.parse gives for that member.
  for (const [k, v] of root.members) {
    assert.deepEqual(JSON.parse(text.slice(v.start, v.end)), JSON.parse(text)[k]);
  }
});

test('malformed JSON is refused', () => {
  for (const bad of ['', '{', '{"a":}', '{"a":1,}', '[1 2]', '{"a":1} x', '"\\x"', '01', '{a:1}']) {
    assert.throws(() => parseSpans(bad), SyntaxError, bad);
  }
});
