/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/firewall/explain.test.ts > TAP > explanations > a name rule without a name > a name rule without a name 1`] = `
policy    p.yaml
flow      tcp 192.0.2.10:40000 -> 93.184.216.34:443
scope     default — no endpoint id given: the default scope decides (as for packets without a GWLB endpoint option)
decision  DROP because rule "office-https" needs a server name and none is readable (#2 in scope "default", p.yaml:13:5)
because   proto: tcp is tcp
          src: 192.0.2.10 is in $office
          dst_ports: 443 is 443
          sni: the rule needs the server name; with none readable settings.names.on_unreadable applies: drop
skipped   #1 no-telnet (p.yaml:9:5): dst_ports: 443 is not 23
note      give --sni NAME or --host NAME to see the decision for a client that sends one
note      evaluated as a new connection (first packet SYN); rules are evaluated once per flow and the verdict covers both directions
`

exports[`test/firewall/explain.test.ts > TAP > explanations > a scope by endpoint > a scope by endpoint 1`] = `
policy    p.yaml
flow      udp 198.51.100.1 -> 10.0.0.1:53  via vpce-0a1b2c3d4e5f60718
scope     lab — vpce-0a1b2c3d4e5f60718 is listed in scope "lab"
decision  ALERT by the default action of scope "lab" (p.yaml:27:21)
because   no rule of scope "lab" matches: its default_action applies
`

exports[`test/firewall/explain.test.ts > TAP > explanations > ICMPv6 echo > ICMPv6 echo 1`] = `
policy    p.yaml
flow      icmpv6 2001:db8:1::5 -> 2001:db8:2::1
scope     default — no endpoint id given: the default scope decides (as for packets without a GWLB endpoint option)
decision  PASS by rule "office-ping" (#3 in scope "default", p.yaml:19:5)
because   proto: icmpv6 is in [icmp, icmpv6]
          src: 2001:db8:1::5 is in $office
          icmp_type: 128 is in [8, 128]
skipped   #1 no-telnet (p.yaml:9:5): proto: icmpv6 is not tcp
          #2 office-https (p.yaml:13:5): proto: icmpv6 is not tcp
`

exports[`test/firewall/explain.test.ts > TAP > explanations > the deciding rule, with why and what came before > the deciding rule, with why and what came before 1`] = `
policy    p.yaml
flow      tcp 192.0.2.10:40000 -> 93.184.216.34:443  sni WWW.example.com
scope     default — no endpoint id given: the default scope decides (as for packets without a GWLB endpoint option)
decision  PASS by rule "office-https" (#2 in scope "default", p.yaml:13:5)
because   proto: tcp is tcp
          src: 192.0.2.10 is in $office
          dst_ports: 443 is 443
          sni: www.example.com matches *.example.com (in $allowed)
skipped   #1 no-telnet (p.yaml:9:5): dst_ports: 443 is not 23
note      evaluated as a new connection (first packet SYN); rules are evaluated once per flow and the verdict covers both directions
`

exports[`test/firewall/explain.test.ts > TAP > explanations > the default action > the default action 1`] = `
policy    p.yaml
flow      udp 198.51.100.1 -> 10.0.0.1:53
scope     default — no endpoint id given: the default scope decides (as for packets without a GWLB endpoint option)
decision  DROP by the default action of scope "default" (p.yaml:2:17)
because   no rule of scope "default" matches: its default_action applies
skipped   #1 no-telnet (p.yaml:9:5): proto: udp is not tcp
          #2 office-https (p.yaml:13:5): proto: udp is not tcp
          #3 office-ping (p.yaml:19:5): proto: udp is not in [icmp, icmpv6]
`
