//! RADIUS accounting client for vpnd (RFC 2866). Built with the accounting issue.
