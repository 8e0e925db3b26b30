import { describe, expect, it } from 'vitest';
import {
  cleanEmail,
  collapseWhitespace,
  decodeEncodedWords,
  decodeEntities,
  decodeQuotedPrintable,
  emailExampleText,
  parseHeaders,
  stripHtml,
  truncate,
} from './email';

const multipart = [
  'From someone@example.com  Thu Aug 22 12:36:23 2002',
  'Return-Path: <x@example.com>',
  'From: "Ann" <ann@Mail.Example.ORG>',
  'Subject: =?iso-8859-1?Q?Caf=E9_news?=',
  '  and more',
  'Content-Type: multipart/alternative; boundary="XYZ"',
  '',
  'preamble',
  '--XYZ',
  'Content-Type: text/html',
  '',
  '<html><head><title>t</title></head><body><p>HTML part</p></body></html>',
  '--XYZ',
  'Content-Type: text/plain; charset=iso-8859-1',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'Plain=20part with a soft=',
  ' break and caf=E9.',
  '--XYZ--',
  '',
].join('\n');

describe('email cleaning', () => {
  it('parses and unfolds headers, skipping the mbox From line', () => {
    const { headers, body } = parseHeaders('From x  Thu\nSubject: a\n b\nX-A: 1\n\nbody\n\nmore');
    expect(headers.get('subject')).toBe('a b');
    expect(headers.get('x-a')).toBe('1');
    expect(headers.has('from')).toBe(false);
    expect(body).toBe('body\n\nmore');
  });

  it('decodes quoted-printable, encoded words and entities', () => {
    expect(decodeQuotedPrintable('a=3Db=\nc')).toBe('a=bc');
    expect(decodeEncodedWords('=?utf-8?B?w6l0w6k=?= =?ISO-8859-1?q?_x?=')).toBe('\u00e9t\u00e9 x');
    expect(decodeEntities('&lt;a&gt; &amp; &eacute;&Eacute; &#233;&#xE9; &bogus;')).toBe(
      '<a> & \u00e9\u00c9 \u00e9\u00e9 &bogus;',
    );
  });

  it('strips HTML crudely', () => {
    const text = stripHtml(
      '<style>p{color:red}</style><!-- c --><p>Hi&nbsp;<b>there</b></p><script>x()</script>',
    );
    expect(collapseWhitespace(text)).toBe('Hi there');
  });

  it('keeps the plain part of a multipart message, the subject and the sender domain', () => {
    const mail = cleanEmail(multipart);
    expect(mail).toEqual({
      subject: 'Caf\u00e9 news and more',
      fromDomain: 'mail.example.org',
      body: 'Plain part with a soft break and caf\u00e9.',
    });
    expect(emailExampleText(mail, 1000)).toBe(
      'Subject: Caf\u00e9 news and more\nFrom: mail.example.org\nPlain part with a soft break and caf\u00e9.',
    );
  });

  it('falls back to the HTML part and decodes base64', () => {
    const raw = multipart.replace(/--XYZ\nContent-Type: text\/plain[\s\S]*?(?=--XYZ--)/, '');
    expect(cleanEmail(raw).body).toBe('HTML part');
    const b64 = `Subject: s\nContent-Transfer-Encoding: base64\n\n${btoa('hello   world')}\n`;
    expect(cleanEmail(b64).body).toBe('hello world');
  });

  it('drops U+FFFD and control characters, maps Windows-1252 bytes', () => {
    expect(collapseWhitespace('seguran\ufffda\u0001 x\n\ty')).toBe('segurana x y');
    const qp = 'Subject: s\nContent-Transfer-Encoding: quoted-printable\n\n=93quoted=94 =80 5';
    expect(cleanEmail(qp).body).toBe('\u201cquoted\u201d \u20ac 5');
  });

  it('truncates at a word boundary', () => {
    expect(truncate('aaaa bbbb cccc dddd eeee', 20)).toBe('aaaa bbbb cccc dddd');
    expect(truncate('short', 12)).toBe('short');
    expect(truncate('x'.repeat(20), 12)).toBe('x'.repeat(12));
  });
});
