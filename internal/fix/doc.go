// Package fix owns reviewed data repairs and guarded SQL: typed parameters
// bound (never interpolated) into a fix's select and apply statements, the
// preview of the rows a fix would change, the fix.apply, fix.undo and
// sql.exec action kinds that change data in one guarded transaction, and
// the before- and after-images that make every change reversible.
package fix
