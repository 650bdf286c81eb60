//! RESP2/RESP3 framing: parsing requests and writing replies.
