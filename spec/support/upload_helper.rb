# frozen_string_literal: true

require "digest"
require "json"

# Request heads for uploads over raw sockets, and reading what the upload
# apps answer (JSON naming the body's class, size and digest).
module UploadHelper
  def post_head(path = "/upload", length: nil, chunked: false, expect: false)
    head = "POST #{path} HTTP/1.1\r\nHost: x\r\n"
    head << "Content-Length: #{length}\r\n" if length
    head << "Transfer-Encoding: chunked\r\n" if chunked
    head << "Expect: 100-continue\r\n" if expect
    head << "\r\n"
  end

  def json(response)
    JSON.parse(response.body)
  end

  def digest_of(body)
    Digest::SHA256.hexdigest(body)
  end
end
