//! Where records come from: files ([`import`]: CSV, JSON, NDJSON), a Cozy export ([`cozy`]), a
//! Nextcloud account over WebDAV ([`webdav`], with [`ical`] and [`vcard`] for calendars and
//! contacts) and the local ingest endpoint ([`ingest`]). Each only parses and hands records to
//! `store`; none takes part in the protocol.

pub mod cozy;
pub mod ical;
pub mod import;
pub mod ingest;
pub mod vcard;
pub mod webdav;
