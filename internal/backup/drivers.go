package backup

// The repository URL schemes Steward supports, registered in one place.
import (
	_ "gocloud.dev/blob/azureblob" // azblob://container/prefix
	_ "gocloud.dev/blob/fileblob"  // file:///path
	_ "gocloud.dev/blob/gcsblob"   // gs://bucket/prefix
	_ "gocloud.dev/blob/s3blob"    // s3://bucket/prefix
)
