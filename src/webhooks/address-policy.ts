/**
 * Which IP addresses a task's webhook may not reach: loopback, private, link-local (cloud metadata
 * services live at 169.254.169.254 and fd00:ec2::254), carrier-grade NAT, multicast and reserved
 * ranges. A webhook target is chosen by an API client, and must not turn the service into a proxy
 * into the network it runs in (SSRF).
 */
import { BlockList, isIP } from 'node:net';

/** Why an address is refused, for the error message. */
export type AddressClass = 'loopback' | 'private' | 'link-local' | 'metadata' | 'reserved';

const RANGES: [AddressClass, string, number, 'ipv4' | 'ipv6'][] = [
  ['metadata', '169.254.169.254', 32, 'ipv4'],
  ['metadata', '100.100.100.200', 32, 'ipv4'], // Alibaba Cloud
  ['metadata', 'fd00:ec2::254', 128, 'ipv6'], // AWS over IPv6
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['reserved', '0.0.0.0', 8, 'ipv4'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '100.64.0.0', 10, 'ipv4'],
  ['link-local', '169.254.0.0', 16, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['reserved', '192.0.0.0', 24, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['reserved', '198.18.0.0', 15, 'ipv4'],
  ['reserved', '224.0.0.0', 4, 'ipv4'],
  ['reserved', '240.0.0.0', 4, 'ipv4'],
  ['loopback', '::1', 128, 'ipv6'],
  ['reserved', '::', 128, 'ipv6'],
  // IPv4-mapped and NAT64 addresses would reach IPv4 hosts past the IPv4 ranges above.
  ['reserved', '::ffff:0:0', 96, 'ipv6'],
  ['reserved', '64:ff9b::', 96, 'ipv6'],
  ['private', 'fc00::', 7, 'ipv6'],
  ['link-local', 'fe80::', 10, 'ipv6'],
  ['reserved', 'ff00::', 8, 'ipv6'],
];

const LISTS = RANGES.map(([cls, net, prefix, type]) => {
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return { cls, list, type };
});

/** The class of an address a webhook may not reach, or undefined when it is a public address. Not an IP: 'reserved'. */
export function blockedClass(address: string): AddressClass | undefined {
  const family = isIP(address);
  if (family === 0) return 'reserved';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  // The first match wins: metadata before the link-local or private range that holds it.
  return LISTS.find((r) => r.type === type && r.list.check(address, type))?.cls;
}
