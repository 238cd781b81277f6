/** @type {import('next').NextConfig} */
module.exports = {
  // A self-contained server in .next/standalone: the runtime image needs no node_modules.
  output: "standalone",
  reactStrictMode: true,
};
