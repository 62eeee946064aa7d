// Validate EPCIS 2.0 documents with the epcis2.js SDK (GS1's EPCIS 2.0 JSON schema plus the SDK's own
// checks), and hash their events with the SDK's event-hash implementation.
// Usage: node epcis_validate.js <document.json>
// Prints one JSON object: {schema: {success, errors}, document: {success, errors}, hashes: [...]}.
'use strict';

const fs = require('node:fs');
const epcis = require('epcis2.js');

const doc = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = { schema: epcis.validateAgainstSchema(doc, 'EPCISDocument') };
try {
  out.document = epcis.validateEpcisDocument(doc, true);
} catch (e) {
  out.document = { success: false, errors: [String(e && e.message ? e.message : e)] };
}
out.hashes = [];
for (const event of doc.epcisBody.eventList) {
  try {
    const copy = { ...event };
    delete copy.eventID;
    out.hashes.push(epcis.eventToHashedId(copy, doc['@context']));
  } catch (e) {
    out.hashes.push(`error: ${e && e.message ? e.message : e}`);
  }
}
process.stdout.write(JSON.stringify(out));
