"""The IMAP adapter: mailbox sources polled by UID, each message handed to the intake."""
