// Package sqlfilter implements the SQL filter language of Service Bus
// subscription rules (a subset of SQL-92; MicrosoftDocs
// articles/service-bus-messaging/service-bus-messaging-sql-filter.md) and
// the message view that filters and correlation filters evaluate.
//
//	f, err := sqlfilter.Parse("sys.Label LIKE 'order.%' AND quantity > 10")
//	// err is an *Error with Line, Column and Offset when f is refused
//	m := &sqlfilter.Message{}
//	m.SetSystem(sqlfilter.SysLabel, "order.created")
//	m.SetUser("quantity", int64(12))
//	ok, err := f.Match(m) // err is an *EvalError for a type mismatch
//
// # Grammar
//
// The whole documented grammar except parameters:
//
//	predicate  := NOT predicate | predicate AND predicate | predicate OR predicate
//	            | expression { = | <> | != | < | <= | > | >= } expression
//	            | property IS [NOT] NULL
//	            | expression [NOT] IN ( expression [, ...] )
//	            | expression [NOT] LIKE pattern [ESCAPE escape_char]
//	            | EXISTS ( property ) | ( predicate ) | TRUE | FALSE
//	expression := constant | function | property | ( expression )
//	            | expression { + | - | * | / | % } expression | { + | - } expression
//	property   := [ sys. | user. ] name        (default scope: user)
//	name       := letter { letter | digit | _ } | [any text, ]] doubled] | "any text, "" doubled"
//	constant   := integer (int64) | decimal or 1.5E3 (float64) | 'string, '' doubled' | TRUE | FALSE | NULL
//	function   := newid() | property(expression) | p(expression)
//
// Precedence, lowest first: OR, AND, NOT, comparisons/IN/LIKE/IS, + -,
// * / %, unary + -. Keywords and names ignore case. Expressions are at
// most 1024 characters (the Service Bus quota) and 64 levels deep.
//
// # Semantics
//
//   - A missing user property, or one whose value is null, is unknown
//     (NULL). Comparisons, arithmetic, LIKE and IN with an unknown left
//     operand are unknown; AND, OR and NOT follow SQL's three-valued
//     truth tables; a filter matches only when it is true.
//   - IN is true if an item equals, unknown if none does but an item is
//     unknown, else false. NOT IN and NOT LIKE negate, keeping unknown.
//   - IS NULL is true for a missing property and for a null value;
//     EXISTS is true when the property is present, even with a null value.
//   - Numbers are int64 or float64 (C# long and double): integer
//     arithmetic stays integer (7 / 2 = 3), mixed arithmetic and
//     comparisons widen to float64. Division of integers by zero is an
//     evaluation error. + with a string operand concatenates (C#).
//   - Strings compare ordinally and case-sensitively; < and > order them
//     ordinally (an extension: the real service's behaviour there is
//     unconfirmed). LIKE is case-sensitive: % any run, _ one character,
//     ESCAPE makes the next character literal.
//   - Booleans compare with = and <> only; timestamps (AMQP timestamp
//     properties) compare with each other.
//   - System properties (sys.): MessageId, CorrelationId, To, ReplyTo,
//     Label (alias Subject), SessionId, ReplyToSessionId, ContentType,
//     PartitionKey, ScheduledEnqueueTimeUtc and Size are filled from the
//     message; TimeToLive, DeliveryCount, SequenceNumber, EnqueuedTimeUtc
//     and ExpiresAtUtc are accepted names but unknown (NULL) at the time
//     a topic routes a message. Any other sys. name is refused.
//   - newid() returns a new random UUID as a string.
//
// # Actions
//
// ParseAction parses a rule action (MicrosoftDocs
// articles/service-bus-messaging/service-bus-messaging-sql-rule-action.md):
//
//	action     := statement { [;] statement } [;]
//	statement  := SET property = expression | REMOVE property
//
// Statements run in order on a copy of the message (later ones see the
// effect of earlier ones); Apply returns the resulting changes to the
// application properties. Only user properties can be set or removed:
// SET or REMOVE on a sys. property is refused when parsed.
//
// # Errors
//
// Parse refuses, with an *Error naming the line and column of the
// offending token: syntax errors, unknown sys. properties, unknown scopes
// or functions, parameters (@name: Config.json cannot give them values),
// comments (-- and /*, which would otherwise read as operators), reserved
// words used as names, and type errors visible in the text
// ('a' = 1, arithmetic on a condition, a property used as a condition).
// Type errors that only the message's values reveal (a string property
// compared with a number) make Match return an *EvalError, the real
// service's FilterException; the broker then does not copy the message
// into that subscription by that rule, and logs the error.
package sqlfilter
