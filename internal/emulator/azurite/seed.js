// Adds blob documents to a stopped Azurite's metadata databases with
// Azurite's own database library (LokiJS), so that the documents' ids and
// the collections' binary indices are exactly what Azurite would have made.
// Called by seed.go: node seed.js AZURITE_PKG_DIR BLOB_DB EXTENT_DB DOCS_JSONL EXTENT_DOC_JSON
"use strict";
const fs = require("fs");
const [azuriteDir, blobDB, extentDB, docsFile, extentDoc] = process.argv.slice(2);
const Loki = require(require.resolve("lokijs", { paths: [azuriteDir] }));

function load(file) {
  const db = new Loki(file);
  db.loadJSON(fs.readFileSync(file, "utf8"));
  return db;
}

function collection(db, name) {
  const c = db.getCollection(name);
  if (!c) throw new Error(`${db.filename}: no collection ${name}`);
  return c;
}

// insertAll inserts docs without maintaining the indices one by one (that
// is quadratic), then rebuilds every index once, as Loki does lazily.
function insertAll(coll, docs) {
  const adaptive = coll.adaptiveBinaryIndices;
  coll.adaptiveBinaryIndices = false;
  coll.insert(docs);
  coll.adaptiveBinaryIndices = adaptive;
  coll.ensureAllIndexes(true);
}

function save(db) {
  const tmp = db.filename + ".seed";
  fs.writeFileSync(tmp, db.serialize());
  fs.renameSync(tmp, db.filename);
}

function main() {
  const docs = fs.readFileSync(docsFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const blobs = load(blobDB);
  const containers = collection(blobs, "$CONTAINERS_COLLECTION$");
  const blobColl = collection(blobs, "$BLOBS_COLLECTION$");
  const existing = new Set();
  for (const b of blobColl.data) existing.add(`${b.accountName}/${b.containerName}/${b.name}/${b.snapshot}`);
  const seen = new Set();
  for (const d of docs) {
    if (!containers.findOne({ accountName: d.accountName, name: d.containerName })) {
      throw new Error(`container ${d.containerName} does not exist in account ${d.accountName}`);
    }
    const k = `${d.accountName}/${d.containerName}/${d.name}/${d.snapshot}`;
    if (existing.has(k) || seen.has(k)) throw new Error(`blob ${d.containerName}/${d.name} already exists`);
    seen.add(k);
  }
  const extents = load(extentDB);
  insertAll(collection(extents, "$EXTENTS_COLLECTION$"), [JSON.parse(extentDoc)]);
  insertAll(blobColl, docs);
  save(extents);
  save(blobs);
}

try {
  main();
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(2);
}
