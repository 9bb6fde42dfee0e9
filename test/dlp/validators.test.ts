import t from 'tap';
import {
  cardBrand,
  compactIban,
  ibanMod97,
  luhnValid,
  mask,
  normalize,
  validAwsKeyId,
  validAwsSecret,
  validCard,
  validGcpApiKey,
  validIban,
  validJwt,
  validPrivateKey,
  validSsn,
} from '../../src/dlp/validators.js';

const b64url = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');

t.test('Luhn', async (t) => {
  t.ok(luhnValid('4539148803436467'));
  t.ok(luhnValid('79927398713'), 'the textbook example');
  t.notOk(luhnValid('4539148803436468'), 'last digit off by one');
  t.notOk(luhnValid('79927398710'));
  t.notOk(luhnValid('0'), 'a single digit is not a number with a check digit');
  t.notOk(luhnValid('45391488034364a7'), 'non-digit');
  t.ok(luhnValid('00'), 'boundary: two zeros sum to 0');
});

t.test('card brands: prefix and length table', async (t) => {
  t.equal(cardBrand('4539148803436467'), 'visa');
  t.equal(cardBrand('5425233430109903'), 'mastercard');
  t.equal(cardBrand('2221000000000009'), 'mastercard', '2-series lower bound');
  t.equal(cardBrand('2720990000000000'), 'mastercard', '2-series upper bound');
  t.equal(cardBrand('2721000000000000'), null, 'just past the 2-series');
  t.equal(cardBrand('374245455400126'), 'amex');
  t.equal(cardBrand('3742454554001260'), null, 'amex is 15 digits, not 16');
  t.equal(cardBrand('6011000990139424'), 'discover');
  t.equal(cardBrand('3530111333300000'), 'jcb');
  t.equal(cardBrand('1234567812345670'), null, 'no brand starts with 1');
  t.equal(cardBrand('453914880343646'), null, 'visa with 15 digits');
});

t.test('cards: brand, Luhn, separators', async (t) => {
  t.ok(validCard('4539148803436467'));
  t.ok(validCard('4539 1488 0343 6467'));
  t.ok(validCard('4539-1488-0343-6467'));
  t.ok(validCard('3742 454554 00126'), 'amex 4-6-5 grouping');
  t.notOk(validCard('4539 1488-0343 6467'), 'mixed separators');
  t.notOk(validCard('4539148803436468'), 'Luhn-invalid');
  t.notOk(validCard('1234567812345670'), 'Luhn-valid but no brand');
  t.notOk(validCard('45391488034'), 'too short');
});

t.test('US SSN, post-2011 rules', async (t) => {
  t.ok(validSsn('536-22-1234'));
  t.ok(validSsn('001-01-0001'), 'lowest valid');
  t.ok(validSsn('899-99-9999'), 'highest area');
  t.ok(validSsn('536 22 1234'));
  t.notOk(validSsn('666-22-1234'), 'area 666');
  t.notOk(validSsn('000-22-1234'), 'area 000');
  t.notOk(validSsn('900-22-1234'), 'area 900');
  t.notOk(validSsn('999-22-1234'), 'area 999');
  t.notOk(validSsn('536-00-1234'), 'group 00');
  t.notOk(validSsn('536-22-0000'), 'serial 0000');
  t.notOk(validSsn('536-22 1234'), 'mixed separators');
  t.notOk(validSsn('078-05-1120'), 'the Woolworth wallet number');
  t.notOk(validSsn('536-22-123'), 'eight digits');
});

t.test('IBAN: country length and mod-97', async (t) => {
  t.ok(validIban('DE89370400440532013000'));
  t.ok(validIban('DE89 3704 0044 0532 0130 00'));
  t.ok(validIban('GB82WEST12345698765432'));
  t.ok(validIban('NO9386011117947'), 'shortest (Norway, 15)');
  t.ok(validIban('FR1420041010050500013M02606'), 'letters inside the BBAN');
  t.notOk(validIban('DE88370400440532013000'), 'wrong check digits');
  t.notOk(validIban('DE8937040044053201300'), 'one character short for DE');
  t.notOk(validIban('XX89370400440532013000'), 'unknown country');
  t.equal(ibanMod97(compactIban('gb82 west 1234 5698 7654 32')), 1, 'lower case and spaces normalise');
});

t.test('AWS access key ids', async (t) => {
  t.ok(validAwsKeyId('AKIAQWERTYUIOPASDFGH'));
  t.ok(validAwsKeyId('ASIAQWERTYUIOPASDFG2'), 'temporary (STS) key, digit 2 is base32');
  t.notOk(validAwsKeyId('AKIAQWERTYUIOPASDFG'), '19 characters');
  t.notOk(validAwsKeyId('AKIAQWERTYUIOPASDFGHJ'), '21 characters');
  t.notOk(validAwsKeyId('AKIAQWERTYUIOPASDFG1'), '1 is not base32');
  t.notOk(validAwsKeyId('AKIAIOSFODNN7EXAMPLE'), "AWS's documentation example");
  t.notOk(validAwsKeyId('ZKIAQWERTYUIOPASDFGH'), 'unknown prefix');
});

t.test('AWS secret keys', async (t) => {
  t.ok(validAwsSecret('kT8s2vQ9mZ1pR4xW7yB3nC6dF0gH5jL8aE2uI9oP'));
  t.notOk(validAwsSecret('0123456789abcdef0123456789abcdef01234567'), 'hex digest: no upper case');
  t.notOk(validAwsSecret('kT8s2vQ9mZ1pR4xW7yB3nC6dF0gH5jL8aE2uI9o'), '39 characters');
  t.notOk(validAwsSecret('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'), "AWS's documentation example");
  t.notOk(validAwsSecret('kT8s2vQ9mZ1pR4xW7yB3nC6dF0gH5jL8aE2uI9o-'), 'a character outside base64');
});

t.test('private keys', async (t) => {
  const body = 'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun';
  t.ok(validPrivateKey(`-----BEGIN RSA PRIVATE KEY-----\n${body}`));
  t.ok(validPrivateKey(`-----BEGIN OPENSSH PRIVATE KEY-----\r\n${body}`));
  t.ok(validPrivateKey(`-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n${body}`));
  t.ok(validPrivateKey('PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none'));
  t.notOk(validPrivateKey('-----BEGIN RSA PRIVATE KEY-----\nshort'), 'header quoted without key material');
  t.notOk(validPrivateKey('PuTTY-User-Key-File-3: ssh-ed25519\nComment: x'), 'PuTTY header without its fields');
});

t.test('JWT: structurally decoded header', async (t) => {
  const sig = 'SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
  t.ok(validJwt(`${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub: '1' })}.${sig}`));
  t.ok(validJwt(`${b64url({ alg: 'none' })}.${b64url({ sub: '1' })}.`), 'unsigned token');
  t.notOk(validJwt(`${b64url({ typ: 'JWT' })}.${b64url({ sub: '1' })}.${sig}`), 'header without alg');
  t.notOk(validJwt(`${b64url([1, 2])}.${b64url({ sub: '1' })}.${sig}`), 'header not an object');
  t.notOk(validJwt(`${b64url({ alg: 'HS256' })}.eyJub3Q.${sig}`), 'payload not JSON');
  t.notOk(validJwt(`${b64url({ alg: 'HS256' })}.${b64url({ sub: '1' })}.short`), 'signed alg with a stub signature');
  t.notOk(validJwt(`${b64url({ alg: 'HS256' })}.${b64url({ sub: '1' })}`), 'two segments');
});

t.test('GCP API keys', async (t) => {
  t.ok(validGcpApiKey('AIzaSyA1234567890abcdefghijklmnopqrstuv'));
  t.notOk(validGcpApiKey('AIzaSyA1234567890abcdefghijklmnopqrstu'), '38 characters');
  t.notOk(validGcpApiKey('AIzbSyA1234567890abcdefghijklmnopqrstuv'), 'wrong prefix');
  t.notOk(validGcpApiKey('AIzaSyA1234567890abcdefghijklmnopqrst+v'), '+ is not base64url');
});

t.test('normalise and mask never show more than four characters', async (t) => {
  t.equal(normalize('luhn_card', '4539 1488 0343 6467'), '4539148803436467');
  t.equal(mask('last4', '4539148803436467'), '************6467');
  t.equal(mask('first4', 'AKIAQWERTYUIOPASDFGH'), 'AKIA****************');
  t.equal(mask('redact', 'kT8s2vQ9mZ1pR4xW7yB3nC6dF0gH5jL8aE2uI9oP'), '****************');
  t.match(mask('last4', '1234567'), /^\*+$/, 'short values are fully masked');
  t.ok(mask('last4', 'x'.repeat(500)).length <= 32, 'length capped');
});
